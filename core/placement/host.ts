/**
 * The PipelineHost: what the Scheduler drives. A host owns the workers and their
 * sessions and carries out moves when told; it decides nothing about placement. The
 * PipelineManager (real workers) implements it, and so does a model of it in the tests
 * (tests/_sim_gpu.ts); one contract suite runs against both.
 * @module
 */
import type { ModelReport, PipelineState, Placement } from "../types.ts";
import type { RunInput, RunOutput, SessionDevice } from "../pipelines/protocol.ts";

/** One pipeline as the host sees it now: read on every decision, so cheap (a map lookup). */
export interface HostView {
  id: string;
  state: PipelineState;
  /** Where its session is (a transition counts as where it starts). */
  placement: Placement;
  /** Tracked GPU bytes now (0 off the GPU). */
  gpuBytes: number;
  /** True when the GPU/CPU parity check found the outputs disagree: it stays on the CPU. */
  gpuMismatch: boolean;
}

/** What a move did. */
export interface HostTransition {
  /** "load:gpu", "load:cpu", "offload", "rehydrate", "unload", or "none" when nothing moved. */
  kind: string;
  /** Where the pipeline is afterwards. */
  placement: Placement;
  /** Tracked GPU bytes given back by the move (for the release check). */
  releasedBytes: number;
}

/** What a run answers. */
export interface HostRunResult {
  output: RunOutput;
  ms: number;
  device: SessionDevice;
}

/** How a run may be cut short. */
export interface HostRunOptions {
  /** Drops the run if it fires while the run still waits in the pipeline's queue. */
  signal?: AbortSignal;
  /**
   * The request's deadline: if it fires while the worker runs, the worker is replaced
   * (the pipeline is marked failed; others are untouched) and the run rejects with timeout.
   */
  deadline?: AbortSignal;
}

/** Workers and sessions, moved only by the Scheduler. */
export interface PipelineHost {
  /** Where pipelines load when nothing says otherwise ("cpu" without a usable GPU). */
  readonly defaultDevice: SessionDevice;
  /** Every pipeline id, in catalog order. */
  ids(): string[];
  /** One pipeline's live view; undefined for an unknown id. */
  view(id: string): HostView | undefined;
  /** Tracked GPU bytes over every pipeline (kept as a running sum: no scan). */
  trackedBytes(): number;
  /** Loads on `device`, or moves there (offload / rehydrate) when loaded on the other one. */
  load(id: string, device: SessionDevice): Promise<HostTransition>;
  /** GPU → CPU; a pipeline already on the CPU stays. Throws not_loaded when unloaded. */
  offload(id: string): Promise<HostTransition>;
  /** Releases the session and ends the worker. */
  unload(id: string): Promise<HostTransition>;
  /** Runs a loaded pipeline where it is; throws not_loaded when it is not loaded. */
  run(id: string, input: RunInput, options?: HostRunOptions): Promise<HostRunResult>;
  /** Ends a pipeline's worker at once (stuck or killed): marked failed; the next use starts a fresh one. */
  replace(id: string, reason: string): void;
  /** One pipeline for the API (the Scheduler adds pin, last use, leak and keep-alive). */
  report(id: string): ModelReport;
  /** Ends every worker. */
  close(): void;
}
