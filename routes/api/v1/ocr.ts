/**
 * `POST /api/v1/ocr`: a PNG or JPEG (raw body with `Content-Type: image/png|image/jpeg`,
 * or the multipart field `image`) → lines of text with boxes and scores, through the
 * `ocr-det` → `ocr-cls` → `ocr-rec` pipelines.
 */
import { z } from "zod";
import type { Handlers, RouteConfig } from "@/server/http/context.ts";
import { HttpError } from "@/server/http/http_error.ts";
import { sniffImageType } from "@/plugins/_image.ts";
import { readMultipartFile } from "@/server/http/body_pool.ts";
import { requireOcrModels, runOcr } from "@/routes/(_lib)/ocr.ts";
import { headerPriority } from "@/server/http/priority.ts";
import type { OcrChainResult } from "@/plugins/ocr_chain.ts";

/** Largest image accepted, in bytes (larger gets 413). */
export const MAX_OCR_IMAGE_BYTES = 20 * 2 ** 20;

/** Inference on an image body: needs the token with HEADROOM_TOKEN_FOR_INFER. */
export const config: RouteConfig = {
  priority: true,
  summary:
    "Image (PNG/JPEG, raw or multipart field `image`) → lines of text, through det → cls → rec",
  auth: "infer",
  bodyLimit: MAX_OCR_IMAGE_BYTES + 64 * 1024,
  image: true,
  responses: {
    POST: {
      200: z.object({
        lines: z.array(z.object({
          text: z.string(),
          score: z.number(),
          box: z.object({ x: z.number(), y: z.number(), width: z.number(), height: z.number() }),
        })),
        text: z.string(),
        width: z.number(),
        height: z.number(),
        timings: z.object({
          detMs: z.number(),
          clsMs: z.number(),
          recMs: z.number(),
          totalMs: z.number(),
        }),
      }) satisfies z.ZodType<OcrChainResult>,
    },
  },
};

/** Answers `{lines: [{text, score, box}], text, width, height, timings}`. */
export const handler: Handlers = {
  POST: async (c) => {
    requireOcrModels(c.var.services, "POST /api/v1/ocr"); // before reading a large body
    const priority = headerPriority(c);
    const bytes = await readImage(c.req.raw);
    return c.json(
      await runOcr(c.var.services, bytes, { trigger: "ocr", signal: c.req.raw.signal, priority }),
    );
  },
};

async function readImage(request: Request): Promise<Uint8Array> {
  const type = (request.headers.get("content-type") ?? "").split(";")[0].trim().toLowerCase();
  let bytes: Uint8Array;
  if (type === "image/png" || type === "image/jpeg") {
    bytes = new Uint8Array(await request.arrayBuffer());
  } else if (type === "multipart/form-data") {
    // A large upload is read in a body worker (Deno's form-data parser is slow on 20 MiB).
    const body = new Uint8Array(await request.arrayBuffer());
    const field = await readMultipartFile(body, request.headers.get("content-type")!, "image");
    if (!field.ok) {
      throw new HttpError(
        400,
        "bad_body",
        `The multipart body could not be read: ${field.message}`,
      );
    }
    if (field.bytes === null) {
      throw new HttpError(
        400,
        "bad_body",
        'multipart field "image": missing; send the picture as a file field named "image"',
      );
    }
    bytes = field.bytes;
  } else {
    throw new HttpError(
      415,
      "unsupported_media_type",
      `Content-Type "${
        type || "(none)"
      }": send image/png, image/jpeg, or multipart/form-data with an "image" field`,
    );
  }
  if (bytes.length === 0) throw new HttpError(400, "bad_body", "image: the body is empty");
  if (bytes.length > MAX_OCR_IMAGE_BYTES) {
    throw new HttpError(
      413,
      "too_large",
      `image: ${bytes.length} bytes is over the ${MAX_OCR_IMAGE_BYTES}-byte limit`,
    );
  }
  if (!sniffImageType(bytes)) {
    throw new HttpError(400, "bad_image", "image: the bytes are neither a PNG nor a JPEG");
  }
  return bytes;
}
