/**
 * Errors of the pipeline layer, each with a stable code that the HTTP layer maps to a
 * status (see server/http/errors.ts): the manager knows nothing of HTTP.
 * @module
 */

/** Why a pipeline operation failed. */
export type PipelineErrorCode =
  | "unknown_model"
  | "not_loaded"
  | "bad_input"
  | "worker_died"
  | "load_failed"
  | "run_failed"
  | "no_webgpu"
  | "oom"
  | "queue_full"
  | "busy"
  | "timeout"
  | "cancelled"
  | "gpu_lost"
  /** The model is larger than the engine can hold (protobuf's 2 GiB, the wasm heap). */
  | "model_too_large"
  /** The model's file is not valid ONNX, or its external data is missing. */
  | "bad_model";

/** A pipeline operation's failure, with a message that says what happened and what to do. */
export class PipelineError extends Error {
  override name = "PipelineError";
  constructor(
    readonly code: PipelineErrorCode,
    message: string,
    /** Seconds a caller should wait before retrying (sent as Retry-After), when it helps. */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

/** The HTTP status each code answers with. */
export const PIPELINE_ERROR_STATUS: Record<
  PipelineErrorCode,
  400 | 404 | 408 | 409 | 422 | 429 | 500 | 503 | 504 | 507
> = {
  unknown_model: 404,
  not_loaded: 409,
  bad_input: 400,
  worker_died: 503,
  load_failed: 500,
  run_failed: 500,
  no_webgpu: 503,
  oom: 507,
  queue_full: 429,
  busy: 409,
  timeout: 504,
  // The client is gone; nobody reads the answer.
  cancelled: 408,
  gpu_lost: 503,
  model_too_large: 422,
  bad_model: 422,
};
