/**
 * The one table from pipeline errors to HTTP answers: the status each
 * {@link PipelineErrorCode} answers with, and the Retry-After a caller gets by default.
 * Worker errors reach here as pipeline errors (workers/manager/errors.ts), so this is
 * the only place a status is chosen for them.
 * @module
 */
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { PipelineError, PipelineErrorCode } from "../../core/pipelines/pipeline_error.ts";

/** How one pipeline error code is answered over HTTP. */
export interface PipelineErrorAnswer {
  status: ContentfulStatusCode;
  /** Seconds sent as Retry-After when the error carries none of its own. */
  retryAfterSeconds?: number;
}

/** The HTTP answer of each pipeline error code (a missing code fails type checking). */
export const PIPELINE_ERROR_HTTP: Readonly<Record<PipelineErrorCode, PipelineErrorAnswer>> = {
  unknown_model: { status: 404 },
  not_loaded: { status: 409 },
  bad_input: { status: 400 },
  bad_tensor: { status: 400 },
  worker_died: { status: 503 },
  load_failed: { status: 500 },
  run_failed: { status: 500 },
  no_webgpu: { status: 503 },
  oom: { status: 507 },
  queue_full: { status: 429, retryAfterSeconds: 1 },
  busy: { status: 409 },
  timeout: { status: 504 },
  // The client is gone; nobody reads the answer.
  cancelled: { status: 408 },
  gpu_lost: { status: 503 },
  model_too_large: { status: 422 },
  bad_model: { status: 422 },
  not_offered: { status: 409 },
};

/** The status and headers `error` answers with. */
export function pipelineErrorAnswer(
  error: PipelineError,
): { status: ContentfulStatusCode; headers: Record<string, string> } {
  const answer = PIPELINE_ERROR_HTTP[error.code];
  const retry = error.retryAfterSeconds ?? answer.retryAfterSeconds;
  return {
    status: answer.status,
    headers: retry !== undefined ? { "Retry-After": String(retry) } : {},
  };
}
