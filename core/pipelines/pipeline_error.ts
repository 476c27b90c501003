/**
 * Errors of the pipeline layer, each with a stable code that the HTTP layer maps to a
 * status (the table in server/http/pipeline_errors.ts): the domain knows nothing of HTTP.
 * Worker errors become these in one place (workers/manager/errors.ts).
 * @module
 */

/** Every pipeline error code: the one list (the HTTP table is checked against it). */
export const PIPELINE_ERROR_CODES = [
  "unknown_model",
  "not_loaded",
  "bad_input",
  /** A tensor that does not fit the model's declared inputs: names the input and dimension. */
  "bad_tensor",
  "worker_died",
  "load_failed",
  "run_failed",
  "no_webgpu",
  "oom",
  "queue_full",
  "busy",
  "timeout",
  "cancelled",
  "gpu_lost",
  /** The model is larger than the engine can hold (protobuf's 2 GiB, the wasm heap). */
  "model_too_large",
  /** The model's file is not valid ONNX, or its external data is missing. */
  "bad_model",
  /** An explicit action its row's `actions` does not offer where the model is now. */
  "not_offered",
] as const;

/** Why a pipeline operation failed. */
export type PipelineErrorCode = typeof PIPELINE_ERROR_CODES[number];

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
