/**
 * What the VRAM monitor reads: a source of per-device memory figures. Each kind of
 * source (NVML, CUDA runtime, a WebGPU adapter with a budget) implements it.
 * @module
 */
import type { DeviceSnapshot, VramSourceKind } from "../types.ts";

/** One device's figures as a source reads them (the monitor adds activity, state and time). */
export type DeviceReading = Omit<DeviceSnapshot, "activeBytes" | "state" | "error" | "takenAt">;

/**
 * A device read, or the driver's error for it. `lost` is true only for the driver's real
 * "GPU is gone" codes (NVML_ERROR_GPU_IS_LOST, RESET_REQUIRED); any other error is
 * passing, and the device keeps its last good figures.
 */
export type DeviceResult =
  | { ok: true; reading: DeviceReading }
  | { ok: false; index: number; error: string; lost: boolean };

/** A source of device figures. `read` must not throw: per-device errors come back as data. */
export interface VramSource {
  readonly kind: VramSourceKind;
  readonly driverVersion: string | null;
  read(): DeviceResult[];
  close(): void;
}

/** The source in use, and why no better one is (null when the best one is in use). */
export interface SourceChoice {
  source: VramSource;
  reason: string | null;
}

/** The source used when no GPU is visible: no devices, the service runs on the CPU. */
export class NoGpuSource implements VramSource {
  readonly kind = "none" as const;
  readonly driverVersion = null;
  /** Returns no devices. */
  read(): DeviceResult[] {
    return [];
  }
  /** Nothing to close. */
  close(): void {}
}
