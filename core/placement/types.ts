/**
 * The types placement shares: what the Scheduler drives (the {@link PipelineHost}), what
 * it reads (the device, the meter), its record of each pipeline, and what switches, test
 * loads and releases answer. Types only, so every file of core/placement (and the worker
 * host) imports them without importing the Scheduler.
 * @module
 */
import type {
  GpuMismatch,
  HostReport,
  PipelineState,
  Placement,
  Priority,
  SessionEngineName,
  TransitionKind,
} from "../types.ts";
import type { TimerHandle } from "../clock.ts";
import type { RunInput, RunOutput, SessionDevice } from "../pipelines/protocol.ts";

// --- the host ---------------------------------------------------------------------------

/** One pipeline as the host sees it now: read on every decision, so cheap (a map lookup). */
export interface HostView {
  id: string;
  state: PipelineState;
  /** Where its session is (a transition counts as where it starts). */
  placement: Placement;
  /** Tracked GPU bytes now (0 off the GPU). */
  gpuBytes: number;
  /** Largest tracked GPU bytes of its current load (0 off the GPU). */
  gpuPeakBytes: number;
  /** The parity check's verdict when the GPU and CPU outputs disagree, else null: the Scheduler then keeps it on the CPU. */
  gpuMismatch: GpuMismatch | null;
}

/** What a move did. */
export interface HostTransition {
  /** The move made, or "none" when nothing moved. */
  kind: TransitionKind | "none";
  /** Where the pipeline is afterwards. */
  placement: Placement;
  /** Tracked GPU bytes given back by the move (for the release check). */
  releasedBytes: number;
  /** GPU bytes the worker still tracks after a move off the GPU (above 0: a leak); absent: 0. */
  trackedAfterBytes?: number;
}

/** What a run answers. */
export interface HostRunResult {
  output: RunOutput;
  /** The session call's own time (the engine's figure; a batch's members share it). */
  ms: number;
  /** How long the run waited in its pipeline's queue on the host before that call. */
  queueMs: number;
  device: SessionDevice;
}

/** How a run may be cut short. */
export interface HostRunOptions {
  /**
   * The client's signal: a run it drops before its turn never runs; one it drops while
   * running answers at once (its rows of a batch are dropped; the others go on).
   */
  signal?: AbortSignal;
  /**
   * The request's deadline: if it fires while the worker runs, the worker is replaced
   * (the pipeline is marked failed; others are untouched) and the run rejects with timeout.
   */
  deadline?: AbortSignal;
  /** Where it goes in the pipeline's queue: higher first, FIFO within one priority ("normal" when absent). */
  priority?: Priority;
}

/**
 * Workers and sessions, moved only by the Scheduler. A host owns the workers and carries
 * out moves when told; it decides nothing about placement (a parity mismatch is a verdict
 * in its view, not a move). The PipelineManager implements it, and so does a model of it
 * in the tests (tests/_sim_gpu.ts); one contract suite runs against both.
 */
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
  /** What the host owns of one pipeline (the Scheduler adds pin, last use, leak and keep-alive). */
  report(id: string): HostReport;
  /** Ends every worker. */
  close(): void;
}

// --- the device and the process -----------------------------------------------------------

/** One reading of device 0, as the Scheduler needs it (the monitor's snapshot, narrowed). */
export interface GpuReading {
  /** none: no GPU usable; lost: the driver says the GPU is gone; error: another driver error (last good figures). */
  state: "none" | "ok" | "error" | "lost";
  freeBytes: number;
  totalBytes: number;
  /** Our tracked GPU bytes when the figures were read (corrects a reading older than our last change). */
  trackedBytes: number;
  /** True when the figures come from a driver (NVML, CUDA) that shows released memory: releases are confirmed against it. */
  confirmsReleases: boolean;
  /** Grows with every driver read: tells a reading taken after a release from one taken before. */
  seq: number;
  error?: string;
}

/** Which reading: a fresh driver read (before a move), or the monitor's latest sample. */
export type Freshness = "fresh" | "sampled";

/** Where the device figures come from (the monitor, or a model of it in tests). */
export interface DeviceView {
  /** Device 0 now: "fresh" asks the driver again instead of taking the last sample. */
  read(when: Freshness): GpuReading;
}

/** What measured moves, switches and test loads read besides the device. */
export interface Meter {
  /** The process's resident memory now. */
  rssBytes(): number;
  /** Device used bytes from a fresh driver read, or null without a driver that reports them. */
  deviceUsedBytes(): number | null;
  /**
   * Waits (bounded) until the process's memory stops moving after workers ended: a
   * terminated worker's memory goes back to the system a little later, and a baseline
   * taken too soon makes the next model's RAM read low or negative.
   */
  settle?(): Promise<void>;
}

// --- the Scheduler's record ---------------------------------------------------------------

/** One pipeline's record (ollama's `runnerRef`): everything about it that is not the worker's. */
export interface PipelineRecord {
  id: string;
  /** Requests running plus open streams: an active pipeline is never evicted. */
  activeCount: number;
  /** Open streams (markActive without a request). */
  holds: number;
  /** Requests admitted but not running yet. */
  waiting: number;
  lastUsedAt: number;
  pinned: boolean;
  /** Its last request's priority (its model's default before any): eviction takes lower ones first. */
  priority: Priority;
  /** Why its GPU memory was not fully given back after a release (tracked bytes left, or the driver never showed them), or null. */
  leak: string | null;
  /** Why it is on the CPU when the policy put it there, or null. */
  cpuReason: string | null;
  /**
   * Whether the driver showed this pipeline's last GPU load in its free figure (null:
   * unknown, a load too small to tell). A driver that never saw the bytes arrive (a
   * software adapter beside an NVML device) cannot show them leave: its releases are not
   * waited for.
   */
  driverSeesLoads: boolean | null;
  keepAliveTimer: TimerHandle | null;
  /** When keep-alive runs out (ms since the epoch), or null: the dashboard's countdown. */
  keepAliveDeadline: number | null;
}

/** Keep-alive of one model: after `ms` idle it is offloaded or unloaded. */
export interface KeepAlive {
  /** Null: kept until something needs the room. */
  ms: number | null;
  idleAction: "offload" | "unload";
}

/** What the budget's estimates read of each model besides the host: its file size and what was measured of it. */
export interface ModelSizes {
  /** Graph file + external data bytes (generated models: their weights). */
  fileBytes(id: string): number;
  /** The saved measured GPU peak, or null when never measured. */
  measuredPeakBytes(id: string): number | null;
}

// --- what placement answers -----------------------------------------------------------------

/** How a release ended, as the offload and unload routes answer it. */
export interface ReleaseOutcome {
  /** True when the driver showed the bytes back; false when the wait ran out (a leak). */
  confirmed: boolean;
  bytes: number;
  /** Time from the release to the answer. */
  ms: number;
  /** False without a driver that reports used memory, or below the check's minimum. */
  checked: boolean;
}

/** The answer of a switch. */
export interface SwitchResult {
  status: "success";
  /** The model switched to (the first of a group). */
  model: string;
  models: string[];
  /** Where it ended up. */
  device: "gpu" | "cpu" | "none";
  /** VRAM it took: device used after − before (MB = 10^6 bytes), or tracked bytes without a driver. */
  vram_mb: number;
  /** RAM its sessions hold (weights for the native engine, wasm memory for wasm), in MB; never negative. */
  ram_mb: number;
  /** The whole process's RSS after the switch, in MB (every pipeline shares it). */
  rss_mb: number;
  /** The engine it runs on ("native", "wasm", "webgpu"). */
  engine: SessionEngineName | null;
  /** Models unloaded to make it exclusive. */
  unloaded: string[];
  load_ms: number;
  /** True when it was loaded alone already: nothing was reloaded. */
  already_loaded: boolean;
  /** Why it is on the CPU when it is, or null. */
  reason: string | null;
}

/** What one isolated load cost. */
export interface LoadMeasurement {
  model: string;
  device: SessionDevice;
  placement: "gpu" | "cpu" | "none";
  /** Device used after − before, when a driver reports used bytes; else tracked bytes. */
  vramBytes: number;
  trackedBytes: number;
  /**
   * RAM the pipeline's session holds after the load, never negative: the weights for the
   * native engine, the wasm memory size for onnxruntime-web (see HostReport.ramBytes).
   */
  ramBytes: number;
  /** Process RSS after − before (whole process, every worker: noisy, may be negative). */
  rssDeltaBytes: number;
  /** Process RSS after the load. */
  rssBytes: number;
  /** The engine its session runs on. */
  engine: SessionEngineName | null;
  ms: number;
  vramBasis: "driver" | "tracked";
}

/** One progress event of a test load (NDJSON lines over HTTP, a progress bar in the terminal). */
export type TestLoadEvent =
  | { event: "started"; model: string; index: number; total: number }
  | { event: "measured"; model: string; index: number; total: number; measurement: LoadMeasurement }
  | { event: "error"; model: string; index: number; total: number; message: string }
  | {
    event: "done";
    total: number;
    failed: number;
    ms: number;
    /** The models loaded before it that are loaded again (placements and pins as they were). */
    restored: string[];
    /** The models loaded before it that could not be put back. */
    notRestored: string[];
    /** What it measured and what it put back, in a sentence. */
    message: string;
  };
