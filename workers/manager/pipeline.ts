/**
 * One pipeline's record in the worker host, and the handle of its worker. The record is
 * owned by the PipelineManager; the other modules of this folder read and update it.
 * @module
 */
import type { CatalogModel } from "../../core/models/catalog.ts";
import type { OnnxFileInfo } from "../../core/models/external_data.ts";
import type { GpuMismatch, PipelineState, TransitionFigures } from "../../core/types.ts";
import type { WorkerStatus } from "../../core/pipelines/protocol.ts";
import { SerialQueue } from "../../core/serial_queue.ts";
import type { WorkerClient } from "../client.ts";

/** The parts of a worker client the manager uses (a real WorkerClient, or a double in tests). */
export type WorkerHandle =
  & Pick<
    WorkerClient,
    | "lastStatus"
    | "alive"
    | "exited"
    | "load"
    | "run"
    | "offload"
    | "rehydrate"
    | "unload"
    | "parity"
    | "onExit"
    | "terminate"
  >
  & Partial<Pick<WorkerClient, "pluginPid">>;

/** One pipeline's record. */
export interface Pipeline {
  model: CatalogModel;
  state: PipelineState;
  client: WorkerHandle | null;
  status: WorkerStatus | null;
  error: string | null;
  lastTransition: TransitionFigures | null;
  /** This pipeline's operations, one at a time. */
  queue: SerialQueue;
  /** Tracked GPU bytes last counted into the manager's running sum. */
  counted: number;
  gpuMismatch: GpuMismatch | null;
  /** True once the parity check ran (it runs the first time the model is on the GPU). */
  parityChecked: boolean;
  /** The model's files as last scanned (graph + external data), or null before the first load. */
  files: OnnxFileInfo | null;
}

/** A record for `model`: unloaded, no worker yet. */
export function newPipeline(model: CatalogModel): Pipeline {
  return {
    model,
    state: "unloaded",
    client: null,
    status: null,
    error: null,
    lastTransition: null,
    queue: new SerialQueue(),
    counted: 0,
    gpuMismatch: null,
    parityChecked: false,
    files: null,
  };
}

/** The worker's last status while it lives, else null. */
export function liveStatus(pipeline: Pipeline): WorkerStatus | null {
  return pipeline.client?.alive ? pipeline.client.lastStatus : null;
}
