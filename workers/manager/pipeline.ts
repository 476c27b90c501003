/**
 * One pipeline's record in the worker host, and the handle of its worker. The record is
 * owned by the PipelineManager; the other modules of this folder read and update it.
 * @module
 */
import type { CatalogModel } from "../../core/models/catalog.ts";
import type { OnnxFileInfo } from "../../core/models/external_data.ts";
import type { GpuMismatch, PipelineState, TransitionFigures } from "../../core/types.ts";
import type { RunInput, WorkerStatus } from "../../core/pipelines/protocol.ts";
import type { HostRunOptions, HostRunResult } from "../../core/placement/types.ts";
import { SerialQueue } from "../../core/serial_queue.ts";
import { type BatchConfig, canBatch, type ReturningCallers } from "../../core/pipelines/batch.ts";
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
  /** Runs waiting for their turn (see manager/batcher.ts), in arrival order. */
  waiting: WaitingRun[];
  /**
   * Moves queued so far (load, offload, rehydrate, unload): a run waits for every move
   * queued before it, and never runs before one queued after it.
   */
  movesQueued: number;
  /** Wakes a batch that waits (`delayMs`) for more rows, when one arrives. */
  onArrival: (() => void) | null;
  /** What its batching did (the report's `batch`, less the models file's settings). */
  batch: BatchCounts;
}

/** One run waiting in its pipeline's list, until a turn takes it (alone or in a batch). */
export interface WaitingRun {
  input: RunInput;
  options: HostRunOptions;
  /** Position of its priority in PRIORITIES (0 = high): lower runs first. */
  rank: number;
  /** Arrival order. */
  seq: number;
  /** {@link Pipeline.movesQueued} when it arrived. */
  afterMoves: number;
  arrivedAt: number;
  /** Its rows and batch key, or null when it runs alone (a plugin payload, no shared first dimension). */
  shape: { rows: number; key: string } | null;
  /** True once a turn took it. */
  taken: boolean;
  /** True once answered (resolved, or rejected: an error, its client left, its deadline). */
  settled: boolean;
  resolve(result: HostRunResult): void;
  reject(error: unknown): void;
}

/** Dynamic batching's running figures of one pipeline. */
export interface BatchCounts {
  /** The GPU limit set after a batch ran out of memory, or null. */
  capRows: number | null;
  largestRows: number;
  runs: number;
  rows: number;
  runsByRows: Map<number, number>;
  /** Why the first dimension turned out not to be a batch dimension (batching stops), or null. */
  refused: string | null;
  /** The callers the last run answered, whom the next turn may wait for (core/pipelines/batch.ts). */
  returning: ReturningCallers | null;
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
    waiting: [],
    movesQueued: 0,
    onArrival: null,
    batch: {
      capRows: null,
      largestRows: 0,
      runs: 0,
      rows: 0,
      runsByRows: new Map(),
      refused: null,
      returning: null,
    },
  };
}

/** The worker's last status while it lives, else null. */
export function liveStatus(pipeline: Pipeline): WorkerStatus | null {
  return pipeline.client?.alive ? pipeline.client.lastStatus : null;
}

/** Its dynamic batching settings, or null when it never batches (`batch: false`, or a plugin). */
export function batchConfigOf(pipeline: Pipeline): BatchConfig | null {
  return pipeline.model.pluginUrl === null ? pipeline.model.batch : null;
}

/**
 * Whether its loaded session can batch now (every input and output has a free first
 * dimension, and no batch showed otherwise), or null without a session that says.
 */
export function sessionBatches(pipeline: Pipeline): boolean | null {
  const status = liveStatus(pipeline);
  if (!status?.inputs.length) return null;
  return pipeline.batch.refused === null && canBatch(status.inputs, status.outputs);
}
