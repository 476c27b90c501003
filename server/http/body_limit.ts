/**
 * The body limit, streaming: a declared `Content-Length` over the limit is refused at once;
 * otherwise the body is counted as the route reads it and the read fails with the 413 past
 * the limit. Hono's bodyLimit buffers a chunked body whole (growing copies) before the
 * route runs, which held the main thread on a large upload.
 * @module
 */
import type { Context } from "hono";
import { HttpError } from "./http_error.ts";

/** The 413 for a body over `limit` bytes. */
function tooLarge(limit: number): HttpError {
  return new HttpError(
    413,
    "too_large",
    `The request body is over this endpoint's ${limit}-byte limit`,
  );
}

/**
 * Refuses (413) a body over `limit` bytes without buffering it: a declared length over
 * the limit throws at once; a chunked body is counted as the route reads it (its
 * `c.req.raw` is then a counting copy). Returns what gives, once a read has failed, the
 * 413 when the body passed the limit (the answer instead of the read's error), else null.
 */
export function streamingBodyLimit(limit: number): (c: Context) => () => HttpError | null {
  const never = () => null;
  return (c) => {
    const raw = c.req.raw;
    if (raw.body === null) return never;
    const declared = raw.headers.get("content-length");
    if (declared !== null && !raw.headers.has("transfer-encoding")) {
      if (Number(declared) > limit) throw tooLarge(limit);
      return never; // Deno's server holds the body to its declared length
    }
    let size = 0;
    const counted = raw.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          size += chunk.length;
          if (size > limit) controller.error(tooLarge(limit));
          else controller.enqueue(chunk);
        },
      }),
    );
    c.req.raw = new Request(raw, { body: counted, duplex: "half" } as RequestInit);
    return () => size > limit ? tooLarge(limit) : null;
  };
}
