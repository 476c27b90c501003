/**
 * What the engine modules of a pipeline worker share: the model's files as the worker
 * sees them, and the failure type that becomes `{code, message}` in a reply.
 * @module
 */
import type { WorkerErrorCode } from "../../core/pipelines/protocol.ts";

/** The files a session reads: the graph and its external data, by absolute path. */
export interface ModelFiles {
  modelPath: string;
  externalData: Array<{ location: string; path: string }>;
}

/** An error that becomes `{code, message}` in the worker's reply. */
export class EngineFailure extends Error {
  constructor(readonly code: WorkerErrorCode, message: string) {
    super(message);
  }
}
