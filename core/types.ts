/**
 * Types that cross a boundary (HTTP bodies, SSE events, the monitor's snapshots).
 * Written once here and imported everywhere else; never re-declared.
 * @module
 */

/** Where the VRAM figures come from, best first. */
export type VramSourceKind = "nvml" | "cudart" | "webgpu" | "none";

/**
 * Health of one device as the last sample saw it: "lost" only for the driver's real
 * "GPU is gone" codes; "error" for any other driver error (the figures are the last good
 * ones, and nothing is evicted on them).
 */
export type DeviceState = "ok" | "error" | "lost";

/** A driver process list: "compute" (CUDA contexts) or "graphics" (Vulkan, so WebGPU). */
export type GpuProcessList = "compute" | "graphics";

/** One device's memory and load at one instant. Bytes are plain numbers (exact below 8 PiB). */
export interface DeviceSnapshot {
  index: number;
  name: string;
  uuid: string;
  totalBytes: number;
  usedBytes: number;
  freeBytes: number;
  /** What this process holds on the device, from NVML's process lists (0 when unknown). */
  reservedBytes: number;
  /** Why `reservedBytes` is unknown (no process list on this driver), when it is. */
  reservedUnknown?: string;
  /**
   * The NVML lists this process was found in (present with NVML): "compute" for CUDA,
   * "graphics" for Vulkan, where a real driver lists WebGPU; empty when in neither.
   */
  reservedFrom?: GpuProcessList[];
  /** Bytes of live GPU buffers tracked inside the pipeline workers. */
  activeBytes: number;
  /** GPU busy percent, or null when the source cannot tell. */
  utilizationPercent: number | null;
  temperatureC: number | null;
  /** "lost" when the driver says the GPU is gone, "error" for another driver error; figures are the last known. */
  state: DeviceState;
  /** The driver's error while `state` is not "ok". */
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
  /** The CPU engine pipelines on the CPU run on, and why. */
  cpuEngine?: CpuEngineReport;
  /**
   * Every model as `GET /api/v1/models` shows it, in catalog order: the dashboard's table
   * follows these rows on the stream (absent when the models could not be listed).
   */
  models?: ModelRow[];
  takenAt: number;
}

/** How the CPU engine is chosen: `auto` = native when it loads, else wasm. */
export type CpuEngineMode = "auto" | "native" | "wasm";

/** The CPU engine in use, and why (in `GET /api/v1/hardware/vram` as `cpuEngine`). */
export interface CpuEngineReport {
  configured: CpuEngineMode;
  /** "native" = onnxruntime-node's CPU EP; "wasm" = onnxruntime-web's wasm EP (the fallback). */
  engine: "native" | "wasm";
  reason: string;
  /** Intra-op threads of the native engine. */
  threads: number;
  /** Where onnxruntime-node is loaded from. */
  ortNodeDir: string;
}

/** The engine a pipeline's session runs on, or null without one. */
export type SessionEngineName = "native" | "wasm" | "webgpu";

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
  /** The engine its session runs on, or null without a session. */
  engine: SessionEngineName | null;
  /** RAM its session holds (see {@link ModelReport.ramBytes}). */
  ramBytes: number;
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
  /** Change of the process's RSS (the whole process: workers share it; may be negative). */
  rssDeltaBytes: number;
  /** RAM the pipeline's session holds after the transition (never negative; see ModelReport.ramBytes). */
  ramBytes: number;
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
  /** The worker's view of process RSS at its last reply (whole process, not this model's share). */
  rssBytes: number;
  /**
   * RAM this pipeline's session holds, never negative: for the native engine the weights
   * it holds (graph + external data bytes, which it maps), for onnxruntime-web (wasm, and
   * the webgpu build's host side) its wasm memory size; 0 when unloaded.
   */
  ramBytes: number;
  /** The engine its session runs on ("native", "wasm", "webgpu"), or null without a session. */
  engine: SessionEngineName | null;
  /** Graph file + external data bytes of its model, once known (the estimate's basis). */
  modelBytes: number | null;
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
  /** When keep-alive will offload or unload it (ms since the epoch), or null. */
  keepAliveDeadline?: number | null;
  /** Why it is on the CPU when a GPU was asked for, or null. */
  cpuReason?: string | null;
  /** Inputs as the loaded session reports them (else as the catalog states them). */
  inputs: Array<{ name: string; type: string | null; dims: Array<number | string> }>;
  outputs: Array<{ name: string; type: string | null; dims: Array<number | string> }>;
}

/**
 * What may be asked of a model now, each a `POST /api/v1/models/{id}/…`: `load-gpu` is
 * `load` with `{"device": "gpu"}` (a load, or a move from the CPU), `load-cpu` the same on
 * the CPU; the others are their paths.
 */
export type ModelAction = "load-gpu" | "load-cpu" | "offload" | "unload" | "pin" | "unpin";

/**
 * The one row shape of a model, wherever the server sends one: each entry of
 * `GET /api/v1/models`, `GET /api/v1/models/{id}`, every model action's answer, and
 * `models` of the VRAM report (so every snapshot of its stream). A {@link ModelReport}
 * with what the scheduler knows of it now: its activity and the actions it allows.
 */
export interface ModelRow extends ModelReport {
  /** Requests running plus open streams on it now. */
  activeCount: number;
  /** Milliseconds since its last request when the row was taken (0 before any). */
  idleMs: number;
  /** What keep-alive does when it runs out: offload to the CPU or unload. */
  idleAction: "offload" | "unload";
  /** The actions it allows where it is now, in the order the dashboard shows them. */
  actions: ModelAction[];
  /** When the row was taken (ms since the epoch, the server's clock): a later row replaces it. */
  takenAt: number;
}

/** What kind of thing an event records. */
export type HeadroomEventKind =
  | "transition"
  | "failure"
  | "recovery"
  | "eviction"
  | "oom"
  | "leak"
  | "mismatch"
  | "info"
  | "placement"
  | "release"
  | "switch"
  | "auto-switch"
  | "keep-alive"
  | "device";

/** Why an eviction happened, as a stable code (the `reason` label of `headroom_evictions_total`). */
export type EvictionReason = "make_room" | "oom" | "headroom";

/**
 * Something that happened, for the event log (transitions, failures, evictions): a
 * sentence for people and structured fields for programs (metrics, filters).
 */
export interface HeadroomEvent {
  seq: number;
  at: number;
  kind: HeadroomEventKind;
  /** The pipeline it concerns (same as `model`; kept for older readers). */
  pipeline: string | null;
  message: string;
  /** The model it concerns, or null. */
  model?: string | null;
  /** Why, in a few words ("to make room for ocr-rec", "idle past keep-alive"). */
  reason?: string;
  /** Bytes it concerns (evicted, released, measured). */
  bytes?: number;
  /** How long the pipeline had been idle, in ms (evictions, keep-alive). */
  idleMs?: number | null;
  /** What caused it: a route ("infer", "ocr", "stream", "chat"), "headroom", "keep-alive", "api". */
  trigger?: string;
  /** Measured VRAM, MB (switches). */
  vramMb?: number;
  /** Measured RAM, MB (switches). */
  ramMb?: number;
  figures?: TransitionFigures;
  /** Why, as a stable code for counting: an eviction's {@link EvictionReason}. */
  reasonCode?: EvictionReason;
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
  /** Process RSS change across the load (whole process: noisy, may be negative). */
  rssDeltaBytes: number | null;
  /** RAM the session held after the load (see ModelReport.ramBytes); null in older profiles. */
  ramBytes?: number | null;
  loadMs: number | null;
  offloadMs: number | null;
  rehydrateMs: number | null;
  measuredAt: number;
}

/** The scheduler's state for the API and dashboard. */
export interface OffloaderStatus {
  budgetBytes: number;
  /** The headroom in force: exactly as configured. */
  headroomBytes: number;
  availableBytes: number;
  onInsufficientVram: "cpu" | "reject";
  /** shared: requests run where they are; exclusive: a request for another model switches to it. */
  mode: "shared" | "exclusive";
  /** Bytes offloaded or unloaded that the driver has not shown back yet. */
  releasingBytes: number;
  /** The exclusive section running now ("switch to ocr-det", "test load"), or null. */
  section: string | null;
  pipelines: Array<{
    id: string;
    activeCount: number;
    pinned: boolean;
    lastUsedAt: number;
    idleMs: number;
    /** When keep-alive will offload or unload it (ms since the epoch), or null. */
    keepAliveDeadline: number | null;
    idleAction: "offload" | "unload";
  }>;
}
