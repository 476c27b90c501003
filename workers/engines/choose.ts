/**
 * Picks the CPU engine once per process: `native` (onnxruntime-node's CPU EP) when its
 * addon loads and runs a tiny model in a worker with the pipeline workers' permissions,
 * else — in `auto` — onnxruntime-web's wasm EP, with the reason. `native` asked for and
 * not loadable is a start-up error that says why and what to set instead.
 * @module
 */
import { fileURLToPath } from "node:url";
import type { CpuEngineMode, CpuEngineReport } from "../../core/types.ts";
import { writeSyntheticModel } from "../../core/models/synthetic.ts";
import { addonDir } from "./native.ts";
import type { ProbeReply, ProbeRequest } from "./probe_worker.ts";

// Deno's own Worker, kept before onnxruntime-web can replace the global (see client.ts).
const DenoWorker: typeof Worker = globalThis.Worker;

/** onnxruntime-node in the project's node_modules. */
export const DEFAULT_ORT_NODE_DIR = fileURLToPath(
  new URL("../../node_modules/onnxruntime-node", import.meta.url),
);

/** Intra-op threads when none are configured: every core, at most 16. */
export function defaultCpuThreads(): number {
  return Math.max(1, Math.min(16, navigator.hardwareConcurrency || 1));
}

/** How long the probe may take before the addon counts as not loadable. */
const PROBE_TIMEOUT_MS = 60_000;

/** Thrown when `native` was asked for and cannot load. */
export class CpuEngineError extends Error {
  override name = "CpuEngineError";
}

const probes = new Map<string, Promise<ProbeReply>>();

function parent(path: string): string {
  return path.slice(0, path.lastIndexOf("/")) || "/";
}

async function runProbe(ortNodeDir: string): Promise<ProbeReply> {
  const dir = await Deno.makeTempDir({ prefix: "headroom-probe-" });
  let worker: Worker | null = null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const model = await writeSyntheticModel(`${dir}/probe.onnx`, 4096, { width: 8 });
    let real = ortNodeDir;
    try {
      real = Deno.realPathSync(ortNodeDir);
    } catch { /* missing: the probe says so */ }
    const nodeModules = fileURLToPath(new URL("../../node_modules", import.meta.url));
    worker = new DenoWorker(new URL("./probe_worker.ts", import.meta.url), {
      type: "module",
      name: "cpu-engine-probe",
      deno: {
        permissions: {
          read: [dir, ortNodeDir, parent(ortNodeDir), real, parent(real), nodeModules],
          ffi: [addonDir(real)],
          net: false,
          env: false,
          run: false,
          write: false,
          sys: false,
          import: false,
        },
      },
    } as WorkerOptions);
    const w = worker;
    return await new Promise<ProbeReply>((resolve) => {
      timer = setTimeout(
        () => resolve({ ok: false, message: `no answer within ${PROBE_TIMEOUT_MS / 1000} s` }),
        PROBE_TIMEOUT_MS,
      );
      w.addEventListener("message", (e) => resolve((e as MessageEvent<ProbeReply>).data));
      w.addEventListener("error", (e) => {
        e.preventDefault();
        resolve({ ok: false, message: e.message ?? "the probe worker failed" });
      });
      w.postMessage({ ortNodeDir, modelPath: model.path, width: 8 } satisfies ProbeRequest);
    });
  } catch (error) {
    return { ok: false, message: (error as Error).message };
  } finally {
    clearTimeout(timer);
    worker?.terminate();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Probes the addon in `ortNodeDir` once per process (later calls share the answer). */
export function probeNative(ortNodeDir: string): Promise<ProbeReply> {
  let probe = probes.get(ortNodeDir);
  if (!probe) {
    probe = runProbe(ortNodeDir);
    probes.set(ortNodeDir, probe);
  }
  return probe;
}

/** Decides the CPU engine for `mode`; throws {@link CpuEngineError} for `native` that cannot load. */
export async function chooseCpuEngine(options: {
  mode: CpuEngineMode;
  ortNodeDir?: string | null;
  threads?: number | null;
}): Promise<CpuEngineReport> {
  const ortNodeDir = options.ortNodeDir ?? DEFAULT_ORT_NODE_DIR;
  const threads = options.threads ?? defaultCpuThreads();
  const base = { configured: options.mode, threads, ortNodeDir };
  if (options.mode === "wasm") {
    return {
      ...base,
      engine: "wasm",
      reason: "HEADROOM_CPU_ENGINE=wasm: onnxruntime-web's wasm EP, as configured " +
        "(models up to 1.5 GiB)",
    };
  }
  const probe = await probeNative(ortNodeDir);
  if (probe.ok) {
    return {
      ...base,
      engine: "native",
      reason: `onnxruntime-node's CPU EP loaded from ${ortNodeDir} and ran a probe in ` +
        `${probe.ms.toFixed(0)} ms (${options.mode})`,
    };
  }
  if (options.mode === "native") {
    throw new CpuEngineError(
      `HEADROOM_CPU_ENGINE=native, but onnxruntime-node cannot run here: ${probe.message}. ` +
        "Run `npx -y deno@2.9.6 install`, point HEADROOM_ORT_NODE_DIR at a working " +
        "onnxruntime-node package, or set HEADROOM_CPU_ENGINE=auto to fall back to wasm",
    );
  }
  return {
    ...base,
    engine: "wasm",
    reason: `onnxruntime-node could not load (${probe.message}); onnxruntime-web's wasm EP ` +
      "serves the CPU instead (models up to 1.5 GiB)",
  };
}
