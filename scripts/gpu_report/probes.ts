/**
 * What the GPU report reads from the machine itself, apart from Headroom's service: the
 * WebGPU adapter's identity and limits, the memory figures of NVML, `nvidia-smi` and the
 * CUDA runtime side by side, and this process's rows in NVML's two process lists.
 * @module
 */
import type { Nvml, NvmlProcessList } from "../../ffi/nvml.ts";

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

/** Runs nvidia-smi; null when it is not installed. */
async function nvidiaSmi(args: string[]): Promise<{ ok: boolean; text: string } | null> {
  try {
    const out = await new Deno.Command("nvidia-smi", { args, stdout: "piped", stderr: "piped" })
      .output();
    const text = new TextDecoder().decode(out.success ? out.stdout : out.stderr).trim();
    return { ok: out.success, text };
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

/**
 * `nvidia-smi --query-gpu` for device 0 (MiB, converted to bytes); null without
 * nvidia-smi. `memory.reserved` is asked for first and left out where the driver's
 * nvidia-smi does not know it.
 */
export async function nvidiaSmiMemory(): Promise<MemoryFigures & { raw: string } | null> {
  const fields = ["memory.total", "memory.used", "memory.free", "memory.reserved"];
  const query = (f: string[]) =>
    nvidiaSmi([`--query-gpu=${f.join(",")}`, "--format=csv,noheader,nounits", "--id=0"]);
  let result = await query(fields);
  if (result === null) return null;
  if (!result.ok) result = await query(fields.slice(0, 3));
  if (result === null || !result.ok) throw new Error(`nvidia-smi failed: ${result?.text}`);
  const mib = result.text.split(",").map((v) => Number(v.trim()) * 2 ** 20);
  const num = (v: number | undefined) => (v === undefined || Number.isNaN(v) ? null : v);
  return {
    totalBytes: num(mib[0]),
    usedBytes: num(mib[1]),
    freeBytes: num(mib[2]),
    reservedBytes: num(mib[3]),
    raw: result.text,
  };
}

/** `nvidia-smi`'s compute-app list (pid, used MiB); the graphics list has no query of its own. */
export async function nvidiaSmiApps(): Promise<string | null> {
  const result = await nvidiaSmi([
    "--query-compute-apps=pid,used_memory,name",
    "--format=csv,noheader",
  ]).catch(() => null);
  return result?.text ?? null;
}

/** Plain `nvidia-smi`: its process table shows each process's type (C, G, C+G). */
export async function nvidiaSmiTable(): Promise<string | null> {
  const result = await nvidiaSmi([]).catch(() => null);
  return result?.text ?? null;
}

/** The tenant helper (tenant.ts), started with this Deno and the same flags. */
export const TENANT_SCRIPT = new URL("./tenant.ts", import.meta.url).pathname;

/**
 * `cudaMemGetInfo` on device 0, read in a child process (tenant.ts with `--bytes 0`), so
 * this process never creates a CUDA context of its own.
 */
export async function cudartMemory(): Promise<MemoryFigures & { library: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--cached-only", "-A", TENANT_SCRIPT, "--bytes", "0"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  if (!out.success || !text) {
    throw new Error(new TextDecoder().decode(out.stderr).trim().split("\n").at(-1) ?? "failed");
  }
  const { before } = JSON.parse(text);
  return {
    totalBytes: before.totalBytes,
    freeBytes: before.freeBytes,
    usedBytes: before.totalBytes - before.freeBytes,
    library: before.library,
  };
}

/**
 * Finds a libcudart where ffi/cudart.ts's own search does not look: the CUDA runtime
 * that PyTorch's wheels bring (`nvidia/cuda_runtime/lib` in site-packages). Null when
 * there is none.
 */
export async function findPythonCudart(): Promise<string | null> {
  const script = "import glob,site,sys\n" +
    "dirs=site.getsitepackages()+[site.getusersitepackages()]\n" +
    "hits=[p for d in dirs for p in sorted(glob.glob(d+'/nvidia/cuda_runtime/lib/libcudart.so*'))+sorted(glob.glob(d+'/nvidia/cu*/lib/libcudart.so*'))+sorted(glob.glob(d+'/torch/lib/libcudart*.so*'))]\n" +
    "print(hits[0] if hits else '')";
  try {
    const out = await new Deno.Command("python3", {
      args: ["-c", script],
      stdout: "piped",
      stderr: "null",
    })
      .output();
    const path = new TextDecoder().decode(out.stdout).trim();
    return path || null;
  } catch {
    return null;
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
