/**
 * VRAM figures for a WebGPU adapter (Apple, AMD, Intel, or the software adapter): no
 * driver tells its memory, so the total is the configured budget and "used" is what
 * the pipelines' workers track as live GPU buffers.
 * @module
 */
import type { DeviceResult, VramSource } from "./source.ts";
import { prepareGpuEnvironment } from "./gpu_env.ts";

/** What a WebGPU adapter says about itself. */
export interface AdapterIdentity {
  name: string;
  /** True for software adapters (llvmpipe, lavapipe, SwiftShader). */
  software: boolean;
}

/** The fields of `GPUAdapterInfo` a name is made of. */
export type AdapterInfoFields = Pick<
  GPUAdapterInfo,
  "vendor" | "architecture" | "device" | "description"
>;

/**
 * A readable adapter name from its info: the description when there is one (Mesa:
 * "llvmpipe (LLVM 15.0.6, 256 bits)"), else vendor, architecture and device. Parts that
 * are bare numbers (PCI vendor and device ids such as Mesa's "65541" and "0") say nothing
 * to a reader and are dropped, as are repeats.
 */
export function adapterName(info: AdapterInfoFields): string {
  const words = (part: string | undefined) => (part ?? "").trim();
  const useful = (part: string) => part.length > 0 && !/^(0x)?[0-9a-f]+$/i.test(part);
  const description = words(info.description);
  if (useful(description)) return description;
  const parts = [info.vendor, info.architecture, info.device].map(words).filter(useful);
  return [...new Set(parts)].join(" ") || "WebGPU adapter";
}

/** Asks the runtime for a WebGPU adapter; null when there is none. */
export async function findAdapter(): Promise<AdapterIdentity | null> {
  if (!("gpu" in navigator) || !navigator.gpu) return null;
  prepareGpuEnvironment();
  const adapter = await navigator.gpu.requestAdapter();
  if (!adapter) return null;
  const name = adapterName(adapter.info);
  const software = /llvmpipe|lavapipe|swiftshader|software/i.test(name) ||
    (adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter === true;
  return { name, software };
}

/** One device: the adapter, with the budget as its total and tracked bytes as used. */
export class WebGpuSource implements VramSource {
  readonly kind = "webgpu" as const;
  readonly driverVersion = null;

  constructor(
    readonly adapter: AdapterIdentity,
    readonly budgetBytes: number,
    /** Live GPU bytes tracked in the workers for device 0. */
    readonly trackedBytes: () => number,
  ) {}

  /** The budget, minus what the workers hold. */
  read(): DeviceResult[] {
    const used = Math.min(this.trackedBytes(), Number.MAX_SAFE_INTEGER);
    return [{
      ok: true,
      reading: {
        index: 0,
        name: this.adapter.name,
        uuid: "",
        totalBytes: this.budgetBytes,
        usedBytes: used,
        freeBytes: Math.max(0, this.budgetBytes - used),
        reservedBytes: used,
        utilizationPercent: null,
        temperatureC: null,
      },
    }];
  }

  /** Nothing to close. */
  close(): void {}
}
