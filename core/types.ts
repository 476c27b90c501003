/**
 * Types that cross a boundary (HTTP bodies, SSE events, the monitor's snapshots).
 * Written once here and imported everywhere else; never re-declared.
 * Settings the API reports take their type from the one settings table (core/config.ts).
 * @module
 */
import type { Config } from "./config.ts";

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

/** What the store could not do since start: the service runs on, and says so. */
export interface StoreHealth {
  /** "degraded" while the last write failed (a full disk, a KV fault). */
  state: "ok" | "degraded";
  /** Writes (events, profiles, chains) that failed and were not kept. */
  droppedWrites: number;
  /** Events among those. */
  droppedEvents: number;
  /** Values read from KV that were not what this version writes (a `null` event), skipped. */
  skippedValues: number;
  /** The last write's error, or null. */
  lastError: string | null;
}

/** The body of `GET /api/v1/hardware/vram` (scheduler, events and models are filled by later layers). */
export interface VramReport {
  source: VramSourceKind;
  /** Why a better source is not in use ("NVML library not found: tried …"), or null. */
  reason: string | null;
  driverVersion: string | null;
  devices: DeviceSnapshot[];
  /** The placement policy's budget, headroom and per-pipeline activity (absent without one). */
  scheduler?: SchedulerStatus;
  /** The newest events, newest first. */
  events?: HeadroomEvent[];
  /** The CPU engine pipelines on the CPU run on, and why. */
  cpuEngine?: CpuEngineReport;
  /**
   * Every model as `GET /api/v1/models` shows it, in catalog order: the one row per model
   * of the report; the dashboard's table follows these rows on the stream (absent when the
   * models could not be listed).
   */
  models?: ModelRow[];
  /** What the store could keep (`degraded` after a failed write: a full disk); absent without a store. */
  storage?: StoreHealth;
  takenAt: number;
}

/** How the CPU engine is chosen: `auto` = native when it loads, else wasm. */
export type CpuEngineMode = Config["cpuEngine"];

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

/**
 * Every error body the API answers with. On the OpenAI-compatible `/v1/` paths it also
 * carries OpenAI's `type` and `param` (the field at fault, or null).
 */
export interface ErrorBody {
  error: { code: string; message: string; type?: string; param?: string | null };
}

/** A move the worker host carries out: a fresh load on a device, GPU → CPU, CPU → GPU, or an unload. */
export type TransitionKind = "load:gpu" | "load:cpu" | "offload" | "rehydrate" | "unload";

/** What a transition cost, measured around it. */
export interface TransitionFigures {
  kind: TransitionKind;
  ms: number;
  /** Tracked GPU bytes of the pipeline after the transition. */
  gpuBytes: number;
  /** Change of the process's RSS (the whole process: workers share it; may be negative). */
  rssDeltaBytes: number;
  /** RAM the pipeline's session holds after the transition (never negative; see HostReport.ramBytes). */
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

/**
 * One catalog model as the worker host sees it: only what the host owns (its worker,
 * session, figures and parity verdict). The Scheduler adds what it owns to make a
 * {@link ModelRow}.
 */
export interface HostReport {
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
  /**
   * Resident memory of the pipeline's plugin process (its heap and off-heap buffers, which
   * its heap cap does not bound), or null without a running plugin process.
   */
  pluginRssBytes: number | null;
  /** The engine its session runs on ("native", "wasm", "webgpu"), or null without a session. */
  engine: SessionEngineName | null;
  /** Graph file + external data bytes of its model, once known (the estimate's basis). */
  modelBytes: number | null;
  error: string | null;
  lastTransition: TransitionFigures | null;
  /** The parity check's verdict when GPU and CPU outputs disagree (it then stays on the CPU), or null. */
  gpuMismatch: GpuMismatch | null;
  /** What the dashboard shows: live figures, last-known ones, or none yet. */
  display: "loaded" | "unloaded" | "never";
  /** Last measured figures on the GPU (from the saved profile), or null when never measured. */
  gpuProfile: MemoryProfile | null;
  /** Last measured figures on the CPU, or null. */
  cpuProfile: MemoryProfile | null;
  /** Inputs as the loaded session reports them (else as the catalog states them). */
  inputs: Array<{ name: string; type: string | null; dims: Array<number | string> }>;
  outputs: Array<{ name: string; type: string | null; dims: Array<number | string> }>;
  /** Its dynamic batching and what it did, or null when it does not batch (`batch: false`, a plugin). */
  batch: BatchFigures | null;
}

/**
 * One pipeline's dynamic batching: the models file's settings, the cap an out-of-memory
 * error set, and the runs so far (the `/metrics` histogram `headroom_batch_size` is
 * built from `runsByRows`).
 */
export interface BatchFigures {
  /** Most rows a run takes (the models file's `batch.max`, default 32). */
  max: number;
  /** How long a run waits for more rows after the first arrives (0: only what queued meanwhile). */
  delayMs: number;
  /** A lower limit on the GPU after a batch ran out of memory there, or null. */
  capRows: number | null;
  /**
   * Whether the loaded session can batch (every input and output has a free first
   * dimension); null until a session says.
   */
  active: boolean | null;
  /** The largest batch that ran, in rows (0 before any). */
  largestRows: number;
  /** Tensor runs since the service started, and the rows they carried. */
  runs: number;
  rows: number;
  /** Runs by their row count ("1", "16"…). */
  runsByRows: Record<string, number>;
}

/**
 * How urgent a request is: higher runs first within a pipeline's queue, and a pipeline
 * whose last requests were lower is evicted first. Set by `X-Headroom-Priority`, v2's
 * `parameters.priority`, or the model's default in the models file; "normal" otherwise.
 */
export type Priority = "high" | "normal" | "low";

/** The priorities, highest first: the one order every queue and eviction compares by. */
export const PRIORITIES = ["high", "normal", "low"] as const satisfies readonly Priority[];

/**
 * What may be asked of a model now, each a `POST /api/v1/models/{id}/…`: `load-gpu` is
 * `load` with `{"device": "gpu"}` (a load, or a move from the CPU), `load-cpu` the same on
 * the CPU; the others are their paths.
 */
export type ModelAction = "load-gpu" | "load-cpu" | "offload" | "unload" | "pin" | "unpin";

/**
 * The one row shape of a model, wherever the server sends one: each entry of
 * `GET /api/v1/models`, `GET /api/v1/models/{id}`, every model action's answer, and
 * `models` of the VRAM report (so every snapshot of its stream). The host's
 * {@link HostReport} with what the scheduler owns: pin, last use, leak, keep-alive, why it
 * is on the CPU, its activity and the actions it allows now.
 */
export interface ModelRow extends HostReport {
  pinned: boolean;
  /** Its last request (ms since the epoch), or null before any. */
  lastUsedAt: number | null;
  /** Why its GPU memory was not fully given back after a release, or null. */
  leak: string | null;
  /** When keep-alive will offload or unload it (ms since the epoch), or null. */
  keepAliveDeadline: number | null;
  /** Why it is on the CPU when a GPU was asked for, or null. */
  cpuReason: string | null;
  /** Requests running plus open streams on it now. */
  activeCount: number;
  /** Milliseconds since its last request when the row was taken (0 before any). */
  idleMs: number;
  /** What keep-alive does when it runs out: offload to the CPU or unload. */
  idleAction: Config["idleAction"];
  /** The actions it allows where it is now, in the order the dashboard shows them. */
  actions: ModelAction[];
  /** When the row was taken (ms since the epoch, the server's clock): a later row replaces it. */
  takenAt: number;
}

/** What kind of thing an event records. */
export type HeadroomEventKind = HeadroomEvent["kind"];

/** Why an eviction happened, as a stable code (the `reason` label of `headroom_evictions_total`). */
export type EvictionReason = "make_room" | "oom" | "headroom";

/** What every event carries: a number, a time, the model it concerns and a sentence for people. */
interface EventBase {
  seq: number;
  at: number;
  /** The pipeline it concerns (same as `model`; kept for older readers). */
  pipeline: string | null;
  /** The model it concerns, or null (the log fills it from `pipeline`). */
  model?: string | null;
  message: string;
  /** What caused it: a route ("infer", "ocr", "stream", "chat"), "headroom", "keep-alive", "api". */
  trigger?: string;
}

/** A move the host carried out, with what it cost. */
export interface TransitionEvent extends EventBase {
  kind: "transition";
  /** The move ("load:gpu", "offload"…), as in `figures.kind`. */
  reason: TransitionKind;
  figures: TransitionFigures;
  /** Tracked GPU bytes after the move (before it, for an unload). */
  bytes: number;
}

/** An idle pipeline left the GPU for the CPU to free memory. */
export interface EvictionEvent extends EventBase {
  kind: "eviction";
  /** Why, in a few words ("to make room for ocr-rec"). */
  reason: string;
  /** Why, as a stable code for counting. */
  reasonCode: EvictionReason;
  /** The GPU bytes it held. */
  bytes: number;
  /** How long it had been idle, or null when never used. */
  idleMs: number | null;
}

/** A load or run ran out of GPU memory (each is followed by a retry or a fallback). */
export interface OomEvent extends EventBase {
  kind: "oom";
  /** The driver's or runtime's error. */
  reason: string;
}

/** Released GPU memory did not show back in time, or tracked bytes outlived a release. */
export interface LeakEvent extends EventBase {
  kind: "leak";
  reason: string;
  /** The bytes released (or still tracked). */
  bytes: number;
}

/** The driver shows released bytes back. */
export interface ReleaseEvent extends EventBase {
  kind: "release";
  /** Confirmed: the driver shows the bytes back. Not shown: it cannot, so they count as freed unseen. */
  reason: "release confirmed" | "release not shown";
  bytes: number;
}

/** Where a pipeline went through the policy (the GPU, the CPU, a refusal), and why. */
export interface PlacementEvent extends EventBase {
  kind: "placement";
  reason: string;
  /** The bytes it concerns (the estimate placed, the bytes moved), when there are any. */
  bytes?: number;
}

/** A switch (explicit, or a request's in exclusive mode) with what it measured. */
export interface SwitchEvent extends EventBase {
  kind: "switch" | "auto-switch";
  reason: string;
  /** VRAM it took, in bytes. */
  bytes: number;
  /** Measured VRAM, MB. */
  vramMb: number;
  /** Measured RAM, MB. */
  ramMb: number;
}

/** Keep-alive ran out: the model was offloaded or unloaded. */
export interface KeepAliveEvent extends EventBase {
  kind: "keep-alive";
  reason: string;
  idleMs: number;
}

/** The GPU and CPU outputs of a model disagree: it stays on the CPU. */
export interface MismatchEvent extends EventBase {
  kind: "mismatch";
  reason: string;
}

/** Something failed: a worker died, a load or a switch failed, a preload failed. */
export interface FailureEvent extends EventBase {
  kind: "failure";
  reason?: string;
  /** The move that failed, when one did. */
  attempt?: TransitionKind;
}

/** News with no figures: a pin, a parity result, a move the host could not make (`attempt`). */
export interface InfoEvent extends EventBase {
  kind: "info";
  /** The move that failed, when one did ("load:gpu", "rehydrate"…). */
  attempt?: TransitionKind;
}

/**
 * Dynamic batching news, never one per run: a pipeline ran a larger batch than before
 * (`largest`, with its time and the GPU peak its worker saw, which the budget then
 * uses), or ran out of memory at `rows` and is capped to `capRows` on the GPU (`capped`).
 */
export interface BatchEvent extends EventBase {
  kind: "batch";
  reason: "largest" | "capped";
  /** Rows of the batch it concerns. */
  rows: number;
  /** The run's time in ms (0 for `capped`). */
  ms: number;
  /** The worker's GPU peak after the run, in bytes (0 off the GPU). */
  gpuPeakBytes: number;
  /** The new limit, for `capped`. */
  capRows?: number;
}

/** A pipeline or device came back, or the device changed state. */
export interface DeviceEvent extends EventBase {
  kind: "recovery" | "device";
  reason?: string;
}

/**
 * Something that happened, for the event log: a sentence for people and, per kind, the
 * typed fields programs read (metrics, filters) — never the sentence.
 */
export type HeadroomEvent =
  | TransitionEvent
  | EvictionEvent
  | OomEvent
  | LeakEvent
  | ReleaseEvent
  | PlacementEvent
  | SwitchEvent
  | KeepAliveEvent
  | MismatchEvent
  | FailureEvent
  | InfoEvent
  | BatchEvent
  | DeviceEvent;

/** An event before the log numbers and times it (one per kind, like {@link HeadroomEvent}). */
export type NewEvent = HeadroomEvent extends infer E
  ? E extends HeadroomEvent ? Omit<E, "seq" | "at"> : never
  : never;

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
  /** RAM the session held after the load (see HostReport.ramBytes); null in older profiles. */
  ramBytes?: number | null;
  loadMs: number | null;
  offloadMs: number | null;
  rehydrateMs: number | null;
  measuredAt: number;
}

/** The scheduler's state for the API and dashboard (`scheduler` of the VRAM report). */
export interface SchedulerStatus {
  budgetBytes: number;
  /** The headroom in force: exactly as configured. */
  headroomBytes: number;
  availableBytes: number;
  onInsufficientVram: Config["onInsufficientVram"];
  /** shared: requests run where they are; exclusive: a request for another model switches to it. */
  mode: Config["mode"];
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
    idleAction: Config["idleAction"];
    /** Its last request's priority, or its model's default: eviction takes lower ones first. */
    priority: Priority;
  }>;
}
