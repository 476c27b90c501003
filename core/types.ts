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
}

/** Every error body the API answers with. */
export interface ErrorBody {
  error: { code: string; message: string };
}
