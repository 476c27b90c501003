/**
 * One error type for the whole HTTP surface and the handler that turns it into
 * `{error: {code, message}}` with the right status. Anything else is logged and
 * answered as a 500 that exposes no internals.
 * @module
 */
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { ErrorBody } from "../types.ts";
import { PIPELINE_ERROR_STATUS, PipelineError } from "../pipelines/errors.ts";

/** An error meant for the caller: its status, a stable code, and a message that says the fix. */
export class HttpError extends Error {
  override name = "HttpError";
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
    /** Extra response headers (for example Retry-After). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** The JSON body of an error. */
export function errorBody(code: string, message: string): ErrorBody {
  return { error: { code, message } };
}

/** Hono `onError`: HttpError → its status and body; anything else → a logged 500. */
export function handleError(error: Error, c: Context): Response {
  if (error instanceof HttpError) {
    for (const [name, value] of Object.entries(error.headers)) c.header(name, value);
    return c.json(errorBody(error.code, error.message), error.status);
  }
  if (error instanceof PipelineError) {
    const retry = error.retryAfterSeconds ?? (error.code === "queue_full" ? 1 : undefined);
    if (retry !== undefined) c.header("Retry-After", String(retry));
    return c.json(errorBody(error.code, error.message), PIPELINE_ERROR_STATUS[error.code]);
  }
  // Hono's own HTTPException (for example from its body-limit middleware) carries a status.
  const status = (error as { status?: number }).status;
  if (typeof status === "number" && status >= 400 && status < 500) {
    return c.json(errorBody("bad_request", error.message), status as ContentfulStatusCode);
  }
  console.error(`Unhandled error on ${c.req.method} ${c.req.path}:`, error);
  return c.json(errorBody("internal", "Internal server error; see the server log."), 500);
}

/** Hono `notFound`: a JSON 404 naming the path. */
export function handleNotFound(c: Context): Response {
  return c.json(
    errorBody("not_found", `No route for ${c.req.method} ${c.req.path}; see /api/v1/health.`),
    404,
  );
}
