/**
 * VRAM figures from the CUDA runtime, used where NVML is missing. It knows totals and
 * free bytes only (no names, no per-process figures), and opening it creates a CUDA
 * context, which costs VRAM: it is only chosen when nothing better answers.
 * @module
 */
import { CudaError, type Cudart } from "../../ffi/cudart.ts";
import type { DeviceResult, VramSource } from "./source.ts";

/** Reads `cudaMemGetInfo` for each device. */
export class CudartSource implements VramSource {
  readonly kind = "cudart" as const;
  readonly driverVersion: string | null;
  #cudart: Cudart;
  #count: number;

  constructor(cudart: Cudart) {
    this.#cudart = cudart;
    this.#count = cudart.deviceCount();
    this.driverVersion = formatCudaVersion(cudart.driverVersion());
  }

  /** One reading per device; a runtime error becomes that device's error. */
  read(): DeviceResult[] {
    const results: DeviceResult[] = [];
    for (let index = 0; index < this.#count; index++) {
      try {
        this.#cudart.setDevice(index);
        const { freeBytes, totalBytes } = this.#cudart.memGetInfo();
        results.push({
          ok: true,
          reading: {
            index,
            name: `CUDA device ${index}`,
            uuid: "",
            totalBytes,
            usedBytes: totalBytes - freeBytes,
            freeBytes,
            reservedBytes: 0,
            utilizationPercent: null,
            temperatureC: null,
          },
        });
      } catch (error) {
        const message = error instanceof CudaError
          ? `${error.cudaName}: ${error.message}`
          : String(error);
        // The CUDA runtime has no "GPU is gone" code of NVML's kind: a failing read counts as lost.
        results.push({ ok: false, index, error: message, lost: true });
      }
    }
    return results;
  }

  /** Closes the library; safe to call twice. */
  close(): void {
    this.#cudart.close();
  }
}

/** CUDA encodes versions as 1000 * major + 10 * minor (12040 → "12.4"). */
export function formatCudaVersion(version: number): string {
  return `${Math.floor(version / 1000)}.${Math.floor((version % 1000) / 10)}`;
}
