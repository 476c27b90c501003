/**
 * VRAM figures from NVML, the best source: exact totals, used bytes of the whole
 * device, what this process holds, utilization and temperature.
 * @module
 */
import { isGpuLost, type Nvml, NvmlError } from "../../ffi/nvml.ts";
import type { DeviceReading, DeviceResult, VramSource } from "./source.ts";

/** Reads every device NVML sees, each on its own so one lost GPU does not hide the others. */
export class NvmlSource implements VramSource {
  readonly kind = "nvml" as const;
  readonly driverVersion: string | null;
  #nvml: Nvml;
  #count: number;
  /** Name and UUID never change: read once per device, then reused. */
  #identity = new Map<number, { name: string; uuid: string }>();

  constructor(nvml: Nvml) {
    this.#nvml = nvml;
    this.driverVersion = nvml.driverVersion();
    this.#count = nvml.deviceCount();
  }

  /** One reading per device; a driver error becomes that device's error. */
  read(): DeviceResult[] {
    const results: DeviceResult[] = [];
    for (let index = 0; index < this.#count; index++) {
      try {
        results.push({ ok: true, reading: this.#readDevice(index) });
      } catch (error) {
        results.push({ ok: false, index, error: describe(error), lost: isGpuLost(error) });
      }
    }
    return results;
  }

  #readDevice(index: number): DeviceReading {
    const device = this.#nvml.device(index);
    let identity = this.#identity.get(index);
    if (!identity) {
      identity = { name: device.name(), uuid: device.uuid() };
      this.#identity.set(index, identity);
    }
    const memory = device.memory();
    // What this process holds, from both lists: CUDA allocations are in the compute list,
    // WebGPU's (Vulkan on NVIDIA) in the graphics list. A list the driver cannot give (an
    // old driver, an unsupported board) leaves the figure partial or unknown, never the
    // device lost.
    const { processes, unavailable } = device.processes();
    const own = processes.find((p) => p.pid === Deno.pid);
    const reservedBytes = own?.usedBytes ?? 0;
    const reservedFrom = own?.lists ?? [];
    const reservedUnknown = unavailable.length === 2
      ? `process list unavailable (${describe(unavailable[0].error)})`
      : unavailable.length === 1
      ? `${unavailable[0].list} process list unavailable (${describe(unavailable[0].error)})`
      : undefined;
    return {
      index,
      ...identity,
      totalBytes: memory.totalBytes,
      usedBytes: memory.usedBytes,
      freeBytes: memory.freeBytes,
      reservedBytes,
      ...(reservedUnknown ? { reservedUnknown } : {}),
      reservedFrom,
      utilizationPercent: optional(() => device.utilization().gpuPercent),
      temperatureC: optional(() => device.temperatureC()),
    };
  }

  /** Shuts NVML down; safe to call twice. */
  close(): void {
    this.#nvml.close();
  }
}

/** Some boards do not report utilization or temperature (NOT_SUPPORTED): that is null, not an error. */
function optional(read: () => number): number | null {
  try {
    return read();
  } catch (error) {
    if (error instanceof NvmlError && error.nvmlName === "NVML_ERROR_NOT_SUPPORTED") return null;
    throw error;
  }
}

function describe(error: unknown): string {
  if (error instanceof NvmlError) return `${error.nvmlName}: ${error.message}`;
  return error instanceof Error ? error.message : String(error);
}
