/**
 * What the GPU report reads from the machine itself, apart from Headroom's service: the
 * WebGPU adapter's identity and limits, the memory figures of NVML, `nvidia-smi` and the
 * CUDA runtime side by side, and this process's rows in NVML's two process lists.
 * @module
 */
import type { Nvml, NvmlProcessList } from "../../ffi/nvml.ts";
import { openCudart } from "../../ffi/cudart.ts";

/** The adapter Deno's WebGPU gives this process, and the limits a big model meets. */
export interface AdapterFigures {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  isFallbackAdapter: boolean;
  /** `DENO_WEBGPU_BACKEND` as set, or wgpu's own choice. */
  backend: string;
  features: string[];
  limits: Record<string, number>;
}

/** Reads `navigator.gpu.requestAdapter()`'s info and every numeric limit. */
export async function readAdapter(): Promise<AdapterFigures | null> {
  const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
  const adapter = await gpu?.requestAdapter();
  if (!adapter) return null;
  const limits: Record<string, number> = {};
  const proto = Object.getPrototypeOf(adapter.limits);
  for (const key of [...Object.getOwnPropertyNames(proto), ...Object.keys(adapter.limits)]) {
    const value = (adapter.limits as unknown as Record<string, unknown>)[key];
    if (typeof value === "number") limits[key] = value;
  }
  const info = adapter.info;
  return {
    vendor: info.vendor,
    architecture: info.architecture,
    device: info.device,
    description: info.description,
    isFallbackAdapter: (adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter === true,
    backend: Deno.env.get("DENO_WEBGPU_BACKEND") ||
      "wgpu's default (Vulkan where a driver is found, else GL)",
    features: [...adapter.features].sort(),
    limits,
  };
}

/** Memory of device 0 in bytes as one source reports it (null where the source has none). */
export interface MemoryFigures {
  totalBytes: number | null;
  usedBytes: number | null;
  freeBytes: number | null;
  reservedBytes?: number | null;
}

/** `nvidia-smi --query-gpu` for device 0 (MiB, converted to bytes); null without nvidia-smi. */
export async function nvidiaSmiMemory(): Promise<MemoryFigures & { raw: string } | null> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("nvidia-smi", {
      args: [
        "--query-gpu=memory.total,memory.used,memory.free,memory.reserved",
        "--format=csv,noheader,nounits",
        "--id=0",
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
  const raw = new TextDecoder().decode(out.success ? out.stdout : out.stderr).trim();
  if (!out.success) throw new Error(`nvidia-smi failed: ${raw}`);
  const mib = raw.split(",").map((v) => Number(v.trim()) * 2 ** 20);
  const num = (v: number | undefined) => (v === undefined || Number.isNaN(v) ? null : v);
  return {
    totalBytes: num(mib[0]),
    usedBytes: num(mib[1]),
    freeBytes: num(mib[2]),
    reservedBytes: num(mib[3]),
    raw,
  };
}

/** `nvidia-smi`'s compute-app list (pid, used MiB); what it shows of the graphics list is not queryable. */
export async function nvidiaSmiApps(): Promise<string | null> {
  try {
    const out = await new Deno.Command("nvidia-smi", {
      args: ["--query-compute-apps=pid,used_memory,name", "--format=csv,noheader"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    return new TextDecoder().decode(out.stdout).trim();
  } catch {
    return null;
  }
}

/** `cudaMemGetInfo` on device 0 through the CUDA runtime (its library found as ffi/cudart.ts does). */
export function cudartMemory(): MemoryFigures & { library: string } {
  const cuda = openCudart();
  try {
    cuda.setDevice(0);
    const { freeBytes, totalBytes } = cuda.memGetInfo();
    return { totalBytes, freeBytes, usedBytes: totalBytes - freeBytes, library: cuda.path };
  } finally {
    cuda.close();
  }
}

/** NVML's device-0 memory figures. */
export function nvmlMemory(nvml: Nvml): MemoryFigures {
  const m = nvml.device(0).memory();
  return {
    totalBytes: m.totalBytes,
    usedBytes: m.usedBytes,
    freeBytes: m.freeBytes,
    reservedBytes: m.reservedBytes,
  };
}

/** This process in NVML's two lists, each read on its own, and the merged row. */
export interface OwnProcessRows {
  pid: number;
  compute: number | null | "absent";
  graphics: number | null | "absent";
  merged: { usedBytes: number | null; lists: NvmlProcessList[] } | null;
  unavailable: string[];
  /** Every row of both lists (pid, bytes, lists), for the record. */
  all: Array<{ pid: number; usedBytes: number | null; lists: NvmlProcessList[] }>;
}

/** Reads both lists for device 0 and picks out this process. */
export function ownProcessRows(nvml: Nvml): OwnProcessRows {
  const device = nvml.device(0);
  const own = (read: () => Array<{ pid: number; usedBytes: number | null }>) => {
    try {
      const row = read().find((p) => p.pid === Deno.pid);
      return row ? row.usedBytes : "absent";
    } catch {
      return "absent";
    }
  };
  const lists = device.processes();
  const mine = lists.processes.find((p) => p.pid === Deno.pid);
  return {
    pid: Deno.pid,
    compute: own(() => device.computeProcesses()),
    graphics: own(() => device.graphicsProcesses()),
    merged: mine ? { usedBytes: mine.usedBytes, lists: mine.lists } : null,
    unavailable: lists.unavailable.map((u) => `${u.list}: ${u.error.message}`),
    all: lists.processes.map((p) => ({ pid: p.pid, usedBytes: p.usedBytes, lists: p.lists })),
  };
}
