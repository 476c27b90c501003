/**
 * One error type for the whole HTTP surface and the handler that turns it into
 * `{error: {code, message}}` with the right status. Anything else is logged and
 * answered as a 500 that exposes no internals.
 * @module
 */
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { ErrorBody } from "../../core/types.ts";
import { PipelineError } from "../../core/pipelines/pipeline_error.ts";
import { pipelineErrorAnswer } from "./pipeline_errors.ts";

/** An error meant for the caller: its status, a stable code, and a message that says the fix. */
export class HttpError extends Error {
  override name = "HttpError";
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
    /** Extra response headers (for example Retry-After). */
    readonly headers: Record<string, string> = {},
    /** The request field at fault ("messages.0.content"), for OpenAI-shaped errors. */
    readonly param: string | null = null,
  ) {
    super(message);
  }
}

/** The JSON body of an error. */
export function errorBody(code: string, message: string): ErrorBody {
  return { error: { code, message } };
}

/** OpenAI's error `type` for a status, as its clients map them to exception classes. */
function openAiType(status: number): string {
  if (status === 401) return "authentication_error";
  if (status === 403) return "permission_error";
  if (status === 404) return "not_found_error";
  if (status === 429) return "rate_limit_error";
  if (status >= 500) return "server_error";
  return "invalid_request_error";
}

/**
 * The error body shape a path's clients read: the Open Inference Protocol's
 * `{"error": "…"}` under `/v2`, OpenAI's on `/v1/`, Headroom's own elsewhere.
 */
export function errorShapeOf(path: string): "oip" | "openai" | "headroom" {
  if (path === "/v2" || path.startsWith("/v2/")) return "oip";
  return path.startsWith("/v1/") ? "openai" : "headroom";
}

/**
 * An error answer in the shape the path's clients read ({@link errorShapeOf}):
 * `{error: {code, message}}`, on the OpenAI-compatible `/v1/` paths OpenAI's
 * `{error: {message, type, param, code}}`, and under `/v2` the protocol's `{error: message}`.
 */
export function errorResponse(
  c: Context,
  status: ContentfulStatusCode,
  code: string,
  message: string,
  param: string | null = null,
  headers: Record<string, string> = {},
): Response {
  for (const [name, value] of Object.entries(headers)) c.header(name, value);
  const shape = errorShapeOf(c.req.path);
  if (shape === "oip") return c.json({ error: message }, status);
  if (shape === "openai") {
    return c.json({ error: { message, type: openAiType(status), param, code } }, status);
  }
  return c.json(errorBody(code, message), status);
}

/** Hono `onError`: HttpError → its status and body; anything else → a logged 500. */
export function handleError(error: Error, c: Context): Response {
  if (error instanceof HttpError) {
    return errorResponse(c, error.status, error.code, error.message, error.param, error.headers);
  }
  if (error instanceof PipelineError) {
    const { status, headers } = pipelineErrorAnswer(error);
    return errorResponse(c, status, error.code, error.message, null, headers);
  }
  // Hono's own HTTPException (for example from its body-limit middleware) carries a status.
  const status = (error as { status?: number }).status;
  if (typeof status === "number" && status >= 400 && status < 500) {
    return errorResponse(c, status as ContentfulStatusCode, "bad_request", error.message);
  }
  console.error(`Unhandled error on ${c.req.method} ${c.req.path}:`, error);
  return errorResponse(c, 500, "internal", "Internal server error; see the server log.");
}

/** Hono `notFound`: a JSON 404 naming the path. */
export function handleNotFound(c: Context): Response {
  return errorResponse(
    c,
    404,
    "not_found",
    `No route for ${c.req.method} ${c.req.path}; see /api/v1/health.`,
  );
}
