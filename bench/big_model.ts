/**
 * One big model through its whole life, in a fresh process so that process memory is
 * this model's alone: a generated external-data model of `--size`, served by a Headroom
 * (software WebGPU adapter with `--gpu`), loaded on the CPU (cold), run, moved to the
 * GPU, run, offloaded, run, rehydrated, run, unloaded, every step through the HTTP API.
 * Prints one JSON {@link BigModelRun} on stdout. Used by `tests/big_model_test.ts` (which
 * asserts on it) and by `deno task bench` (the size sweep).
 *
 *     deno run -A --v8-flags=--wasm-tiering-budget=100000000 bench/big_model.ts --size 1GiB --cpu-engine native --gpu
 *
 * Memory: `peakRssBytes` of a step is the process's high-water mark during it (VmHWM,
 * reset before each step through /proc/self/clear_refs), so transient copies count.
 * @module
 */
import { parseArgs } from "node:util";
import { startHeadroom } from "../server/serve_headroom.ts";
import { parseSyntheticSize, writeSyntheticModel } from "../core/models/synthetic.ts";
import type { ModelRow, VramReport } from "../core/types.ts";

/** One step's figures. */
export interface StepFigures {
  step: string;
  ms: number;
  /** Process RSS after the step. */
  rssBytes: number;
  /** The process's RSS high-water mark during the step. */
  peakRssBytes: number;
  gpuBytes: number;
  ramBytes: number;
  engine: string | null;
  device: string;
  /** Largest |difference| from the first CPU run's output, for run steps. */
  maxAbsDiff?: number;
}

/** What one run measured. */
export interface BigModelRun {
  size: string;
  weightBytes: number;
  /** Graph + external data on disk. */
  fileBytes: number;
  cpuEngine: string;
  cpuEngineReason: string;
  gpu: boolean;
  /** "webgpu" when the GPU legs ran; else why not. */
  gpuSource: string;
  baselineRssBytes: number;
  generateMs: number;
  steps: StepFigures[];
  /** The answer of `POST /v1/models/switch` for the model. */
  switched: Record<string, unknown>;
  /** The `measured` event of a test load of the model. */
  testLoad: Record<string, unknown>;
}

const { values } = parseArgs({
  args: Deno.args,
  options: {
    size: { type: "string", default: "16MiB" },
    "cpu-engine": { type: "string", default: "auto" },
    gpu: { type: "boolean", default: false },
    "cold-gpu": { type: "boolean", default: false },
    runs: { type: "string", default: "3" },
    batch: { type: "string", default: "0" },
  },
});

const CLEAR_REFS = "/proc/self/clear_refs";

function resetPeak(): void {
  try {
    Deno.writeTextFileSync(CLEAR_REFS, "5");
  } catch { /* not Linux: the peak is the lifetime's */ }
}

function peakRss(): number {
  try {
    const status = Deno.readTextFileSync("/proc/self/status");
    const kb = /VmHWM:\s+(\d+) kB/.exec(status)?.[1];
    if (kb) return Number(kb) * 1024;
  } catch { /* fall through */ }
  return Deno.memoryUsage().rss;
}

async function main(): Promise<BigModelRun> {
  // Prefer lavapipe (Vulkan) over the GL backend when it is installed (see tests/worker_test.ts).
  if (!Deno.env.get("DENO_WEBGPU_BACKEND")) {
    try {
      Deno.statSync("/usr/share/vulkan/icd.d/lvp_icd.x86_64.json");
      Deno.env.set("DENO_WEBGPU_BACKEND", "vulkan");
    } catch { /* keep wgpu's default */ }
  }
  const size = values.size!;
  const weightBytes = parseSyntheticSize(size);
  const dir = await Deno.makeTempDir({ prefix: "headroom-big-" });
  try {
    const started = performance.now();
    const info = await writeSyntheticModel(`${dir}/big.onnx`, weightBytes, { seed: 5 });
    const generateMs = performance.now() - started;
    await Deno.writeTextFile(
      `${dir}/models.json`,
      JSON.stringify({ models: [{ id: "big", source: "./big.onnx" }] }),
    );
    await using headroom = await startHeadroom({
      args: [
        "--models",
        `${dir}/models.json`,
        "--data-dir",
        `${dir}/data`,
        "--cpu-engine",
        values["cpu-engine"]!,
        "--port",
        "0",
        ...(values.gpu ? ["--gpu", "software", "--vram-budget", "64GiB", "--headroom", "0"] : [
          "--gpu",
          "cpu",
        ]),
      ],
    });
    const { service, app } = headroom;
    const vram: VramReport = await (await app.request("/api/v1/hardware/vram")).json();
    const model = async (): Promise<ModelRow> =>
      await (await app.request("/api/v1/models/big")).json();
    const post = (path: string, body?: unknown) =>
      headroom.post<Record<string, unknown>>(path, body);
    const input = {
      input: {
        type: "float32",
        dims: [1, info.width],
        data: Array.from({ length: info.width }, (_, i) => Math.sin(i * 0.37)),
      },
    };
    let reference: number[] | null = null;
    let testLoad: Record<string, unknown> = {};
    const steps: StepFigures[] = [];
    const step = async (name: string, op: () => Promise<unknown>) => {
      resetPeak();
      const t0 = performance.now();
      const result = await op() as { outputs?: { output?: { data: number[] } } };
      const ms = performance.now() - t0;
      const m = await model();
      const figures: StepFigures = {
        step: name,
        ms,
        rssBytes: Deno.memoryUsage().rss,
        peakRssBytes: peakRss(),
        gpuBytes: m.gpuBytes,
        ramBytes: m.ramBytes,
        engine: m.engine,
        device: m.placement,
      };
      const out = result?.outputs?.output?.data;
      if (out) {
        reference ??= out;
        figures.maxAbsDiff = out.reduce(
          (max, v, i) => Math.max(max, Math.abs(v - reference![i])),
          0,
        );
      }
      steps.push(figures);
      console.error(
        `[big-model ${size}] ${name}: ${ms.toFixed(0)} ms, RSS ${
          (figures.rssBytes / 2 ** 20).toFixed(0)
        } MiB ` +
          `(peak ${
            (figures.peakRssBytes / 2 ** 20).toFixed(0)
          }), GPU ${figures.gpuBytes}, RAM ${figures.ramBytes}, ${figures.engine}`,
      );
    };
    // Over HTTP a request brings an offloaded model back to the GPU when there is room;
    // the manager runs it where it is, so the CPU legs go through it.
    const inferHere = async () => {
      const result = await service.host.run("big", {
        kind: "tensors",
        tensors: {
          input: {
            type: "float32",
            dims: [1, info.width],
            data: Float32Array.from(input.input.data),
          },
        },
      });
      if (result.output.kind !== "tensors") throw new Error("expected tensors");
      return {
        outputs: {
          output: { data: Array.from(result.output.tensors.output.data as Float32Array) },
        },
      };
    };
    const inferHttp = () => post("/api/v1/pipelines/big/infer", { inputs: input });
    const runs = Math.max(1, Number(values.runs));
    const baseline = Deno.memoryUsage().rss;
    await step("load:cpu", () => post("/api/v1/models/big/load", { device: "cpu" }));
    await step("run:cpu:first", inferHere);
    for (let i = 0; i < runs; i++) await step("run:cpu", inferHere);
    const batch = Number(values.batch);
    if (batch > 1) {
      // A batch makes the run compute-bound; one row is bound by memory bandwidth.
      const data = Float32Array.from({ length: batch * info.width }, (_, i) => Math.sin(i * 0.37));
      const inferBatch = async () => {
        await service.host.run("big", {
          kind: "tensors",
          tensors: { input: { type: "float32", dims: [batch, info.width], data: data.slice() } },
        });
      };
      await inferBatch(); // warm-up
      for (let i = 0; i < runs; i++) await step(`run:cpu:batch${batch}`, inferBatch);
    }
    const gpu = values.gpu && vram.source === "webgpu";
    if (gpu && values["cold-gpu"]) {
      await step("unload:cpu", () => post("/api/v1/models/big/unload"));
      await step("load:gpu:cold", () => post("/api/v1/models/big/load", { device: "gpu" }));
      await step("run:gpu:cold", inferHttp);
      await step("unload:gpu", () => post("/api/v1/models/big/unload"));
      await step("load:cpu:again", () => post("/api/v1/models/big/load", { device: "cpu" }));
    }
    if (gpu) {
      await step("load:gpu", () => post("/api/v1/models/big/load", { device: "gpu" }));
      await step("run:gpu:first", inferHttp);
      for (let i = 0; i < runs; i++) await step("run:gpu", inferHttp);
      await step("offload", () => post("/api/v1/models/big/offload"));
      await step("run:cpu:offloaded", inferHere);
      await step("rehydrate", () => post("/api/v1/models/big/rehydrate"));
      await step("run:gpu:rehydrated", inferHttp);
    }
    await step("unload", () => post("/api/v1/models/big/unload"));
    // A terminated worker's isolate is torn down asynchronously: give it a moment.
    await step("settle", () => new Promise((r) => setTimeout(r, 1000)));
    // Exclusive-mode switch and a test load go through the same moves.
    const switched = await (async () => {
      let body: Record<string, unknown> = {};
      await step("switch", async () => body = await post("/v1/models/switch", { model: "big" }));
      return body;
    })();
    await step("test-load", async () => {
      const response = await app.request("/api/v1/models/test-load", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ models: ["big"] }),
      });
      const lines = (await response.text()).trim().split("\n").map((l) => JSON.parse(l));
      const measured = lines.find((l) => l.event === "measured");
      if (!measured) throw new Error(`test-load: ${JSON.stringify(lines)}`);
      testLoad = measured.measurement;
    });

    return {
      size,
      weightBytes: info.weightBytes,
      fileBytes: info.fileBytes,
      cpuEngine: vram.cpuEngine?.engine ?? "wasm",
      cpuEngineReason: vram.cpuEngine?.reason ?? "",
      gpu,
      gpuSource: gpu ? "webgpu" : `${vram.source}: ${vram.reason ?? "GPU legs not asked for"}`,
      baselineRssBytes: baseline,
      generateMs,
      steps,
      switched,
      testLoad,
    };
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) {
  const run = await main();
  console.log(JSON.stringify(run));
  // Workers and the WebGPU device can keep the event loop alive: the figures are out.
  Deno.exit(0);
}
