/**
 * Types that cross a boundary (HTTP bodies, SSE events, the monitor's snapshots).
 * Written once here and imported everywhere else; never re-declared.
 * @module
 */

/** Where the VRAM figures come from, best first. */
export type VramSourceKind = "nvml" | "cudart" | "webgpu" | "none";

/** Health of one device as the last sample saw it. */
export type DeviceState = "ok" | "lost";

/** One device's memory and load at one instant. Bytes are plain numbers (exact below 8 PiB). */
export interface DeviceSnapshot {
  index: number;
  name: string;
  uuid: string;
  totalBytes: number;
  usedBytes: number;
  freeBytes: number;
  /** What this process holds on the device, from NVML's process list (0 when unknown). */
  reservedBytes: number;
  /** Bytes of live GPU buffers tracked inside the pipeline workers. */
  activeBytes: number;
  /** GPU busy percent, or null when the source cannot tell. */
  utilizationPercent: number | null;
  temperatureC: number | null;
  /** "lost" when the driver stopped answering for this device; figures are the last known. */
  state: DeviceState;
  /** The driver's error while `state` is "lost". */
  error?: string;
  /** Milliseconds since the epoch. */
  takenAt: number;
}

/** One sample of every device, as the monitor keeps it in its history. */
export interface VramSample {
  takenAt: number;
  devices: DeviceSnapshot[];
}

/** The body of `GET /api/v1/hardware/vram` (pipelines and offloader are filled by later layers). */
export interface VramReport {
  source: VramSourceKind;
  /** Why a better source is not in use ("NVML library not found: tried …"), or null. */
  reason: string | null;
  driverVersion: string | null;
  devices: DeviceSnapshot[];
  pipelines: PipelineReport[];
  /** The placement policy's budget, headroom and per-pipeline activity (absent without one). */
  offloader?: OffloaderStatus;
  /** The newest events, newest first. */
  events?: HeadroomEvent[];
  takenAt: number;
}

/** Where a pipeline's session lives now. */
export type Placement = "gpu" | "cpu" | "none";

/** A pipeline's lifecycle state (see ARCHITECTURE.md, "Placement states"). */
export type PipelineState =
  | "unloaded"
  | "loading"
  | "gpu"
  | "cpu"
  | "offloading"
  | "rehydrating"
  | "failed";

/** One pipeline as the API shows it. */
export interface PipelineReport {
  id: string;
  state: PipelineState;
  placement: Placement;
  /** Bytes of GPU buffers alive in its worker (exact, tracked). */
  gpuBytes: number;
  gpuBuffers: number;
  error: string | null;
  pinned: boolean;
  /** Why its GPU memory was not fully given back after a release, or null. */
  leak: string | null;
  /** True when the parity check found GPU and CPU outputs disagree: it stays on the CPU. */
  gpuMismatch: boolean;
}

/**
 * Every error body the API answers with. On the OpenAI-compatible `/v1/` paths it also
 * carries OpenAI's `type` and `param` (the field at fault, or null).
 */
export interface ErrorBody {
  error: { code: string; message: string; type?: string; param?: string | null };
}

/** What a transition cost, measured around it. */
export interface TransitionFigures {
  /** "load:gpu", "load:cpu", "offload", "rehydrate", "unload". */
  kind: string;
  ms: number;
  /** Tracked GPU bytes of the pipeline after the transition. */
  gpuBytes: number;
  /** Change of the process's RSS (the whole process: workers share it). */
  rssDeltaBytes: number;
  /** Change of the device's used bytes per NVML, or null without NVML. */
  deviceUsedDeltaBytes: number | null;
  at: number;
}

/** A GPU/CPU disagreement found by the parity check. */
export interface GpuMismatch {
  maxAbsError: number;
  tolerance: number;
  checkedAt: number;
}

/** One catalog model with its live state, as `GET /api/v1/models` shows it. */
export interface ModelReport {
  id: string;
  name: string;
  tags: string[];
  /** True when a plugin does its pre- and post-processing (run it with a plugin payload). */
  plugin: boolean;
  state: PipelineState;
  placement: Placement;
  gpuBytes: number;
  gpuBuffers: number;
  /** Largest tracked GPU bytes seen while loaded (what a run needs). */
  gpuPeakBytes: number;
  /** The worker's view of process RSS at its last reply (whole process). */
  rssBytes: number;
  error: string | null;
  lastTransition: TransitionFigures | null;
  gpuMismatch: GpuMismatch | null;
  lastUsedAt: number | null;
  /** What the dashboard shows: live figures, last-known ones, or none yet. */
  display: "loaded" | "unloaded" | "never";
  /** Last measured figures on the GPU (from the saved profile), or null when never measured. */
  gpuProfile: MemoryProfile | null;
  /** Last measured figures on the CPU, or null. */
  cpuProfile: MemoryProfile | null;
  /** A GPU leak found after a release (bytes still tracked or not returned to the device). */
  leak: string | null;
  pinned: boolean;
  /** Inputs as the loaded session reports them (else as the catalog states them). */
  inputs: Array<{ name: string; type: string | null; dims: Array<number | string> }>;
  outputs: Array<{ name: string; type: string | null; dims: Array<number | string> }>;
}

/** Something that happened, for the event log (transitions, failures, evictions). */
export interface HeadroomEvent {
  seq: number;
  at: number;
  kind:
    | "transition"
    | "failure"
    | "recovery"
    | "eviction"
    | "oom"
    | "leak"
    | "mismatch"
    | "info"
    | "auto-switch";
  pipeline: string | null;
  message: string;
  figures?: TransitionFigures;
  /** Why, as a stable code for counting (an eviction's: "make_room", "oom", "headroom"). */
  reason?: string;
  /** The transition that failed ("load:gpu", "rehydrate"…), on a failed or refused move. */
  attempt?: string;
}

/** What was last measured of one model on one device kind and input shape. */
export interface MemoryProfile {
  modelId: string;
  device: "gpu" | "cpu";
  /** Input shape the figures belong to ("default" when the model's own shapes were used). */
  shape: string;
  /** Tracked GPU bytes right after the load (weights and fixed buffers). */
  gpuLoadBytes: number | null;
  /** Largest tracked GPU bytes seen while loaded (what a run needs): the estimate the budget uses. */
  gpuPeakBytes: number | null;
  /** Device-used change per NVML across the load, or null without NVML. */
  deviceUsedDeltaBytes: number | null;
  /** Process RSS change across the load. */
  rssDeltaBytes: number | null;
  loadMs: number | null;
  offloadMs: number | null;
  rehydrateMs: number | null;
  measuredAt: number;
}

/** The offloader's state for the API and dashboard. */
export interface OffloaderStatus {
  budgetBytes: number;
  headroomBytes: number;
  availableBytes: number;
  onInsufficientVram: "cpu" | "reject";
  pipelines: Array<
    { id: string; activeCount: number; pinned: boolean; lastUsedAt: number; idleMs: number }
  >;
}
