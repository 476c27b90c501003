/**
 * Worker errors → pipeline errors, in one place: the code a worker's error reply becomes
 * for each stage (a run, or a move: load, offload, rehydrate), and what a thrown failure
 * (a dead worker, an input postMessage cannot clone, a worker that would not start)
 * becomes. The HTTP answer of each pipeline error is in server/http/pipeline_errors.ts.
 * @module
 */
import type { WorkerError, WorkerErrorCode } from "../../core/pipelines/protocol.ts";
import { PipelineError, type PipelineErrorCode } from "../../core/pipelines/pipeline_error.ts";
import { QueueAbortedError } from "../../core/serial_queue.ts";
import { WorkerDiedError, WorkerTimeoutError } from "../client.ts";

/** What the worker was asked when it answered with an error. */
export type WorkerStage = "run" | "move";

/**
 * The pipeline error each worker error code becomes, by stage (a missing code fails
 * type checking). A run keeps the caller's fault (bad_input) and the GPU's (oom) apart
 * from its own; a move keeps oom (evict and retry) and no_webgpu (fall back to the CPU).
 */
export const WORKER_ERROR_MAP: Readonly<
  Record<WorkerStage, Readonly<Record<WorkerErrorCode, PipelineErrorCode>>>
> = {
  run: {
    oom: "oom",
    bad_input: "bad_input",
    bad_tensor: "bad_tensor",
    not_loaded: "run_failed",
    load_failed: "run_failed",
    run_failed: "run_failed",
    no_webgpu: "run_failed",
    internal: "run_failed",
  },
  move: {
    oom: "oom",
    no_webgpu: "no_webgpu",
    bad_input: "load_failed",
    bad_tensor: "load_failed",
    not_loaded: "load_failed",
    load_failed: "load_failed",
    run_failed: "load_failed",
    internal: "load_failed",
  },
};

/**
 * onnxruntime-node's own refusal of external data outside the model's folder (a symlink
 * out): the same file fault core/models/external_data.ts refuses, so the same 422.
 */
const NATIVE_EXTERNAL_DATA_REFUSAL = /External data path (validation failed|escapes)/;

/** The pipeline error of a worker's error reply at `stage`; `message` says what was asked. */
export function fromWorkerError(
  stage: WorkerStage,
  error: WorkerError,
  message: string,
): PipelineError {
  if (stage === "move" && NATIVE_EXTERNAL_DATA_REFUSAL.test(error.message)) {
    return new PipelineError("bad_model", message);
  }
  return new PipelineError(WORKER_ERROR_MAP[stage][error.code], message);
}

/**
 * What a request that threw becomes: a worker step past its deadline is timeout (504, the
 * worker was replaced); a dead worker is worker_died (503); an input the
 * structured clone cannot carry (nested thousands deep, say) is the caller's bad_input,
 * as the worker never saw it. Pipeline errors and dropped queue entries pass as they are;
 * anything else is returned unchanged.
 */
export function fromThrown(error: unknown, modelId: string): unknown {
  if (error instanceof PipelineError || error instanceof QueueAbortedError) return error;
  if (error instanceof WorkerTimeoutError) {
    return new PipelineError(
      "timeout",
      `${error.message}. The request was not completed.`,
    );
  }
  if (error instanceof WorkerDiedError) {
    return new PipelineError(
      "worker_died",
      `${error.message}. The request was not completed; the next request starts a fresh worker.`,
    );
  }
  if (
    error instanceof RangeError ||
    (error instanceof DOMException && error.name === "DataCloneError")
  ) {
    return new PipelineError(
      "bad_input",
      `Pipeline "${modelId}": the input cannot be passed to its worker (${error.message}); send a flatter payload`,
    );
  }
  return error;
}

/** A worker that would not start (its init failed, or it died starting) is load_failed. */
export function fromStartFailure(error: unknown, modelId: string): PipelineError {
  return new PipelineError("load_failed", `Model "${modelId}": ${(error as Error).message}`);
}
