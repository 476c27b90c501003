// Pipeline costs, two ways:
//
// - `deno bench` (scripts/bench.ts runs it): inference through a pipeline worker against the
//   same model in a session on the main thread, PaddleOCR det on 1x3x320x320 float32, wasm
//   EP, numThreads 1 on both sides. One group, the main thread as baseline, so `deno bench`
//   prints the ratio (and scripts/bench.ts reports it against its target).
// - `deno run bench/pipelines_bench.ts --one-shot` (scripts/bench.ts' pipelineRows runs it):
//   one-shot timings that a Deno.bench loop would blur: cold load per model (fresh worker
//   each), offload / rehydrate on the GPU with the tracked GPU bytes, and process RSS per
//   worker, idle and loaded, for each onnxruntime-web build. Prints JSON on stdout.
//
// workers/client.ts comes first: it keeps Deno's own Worker before onnxruntime-web (imported
// below, and only in the bench mode) replaces globalThis.Worker on the main thread.
import { WorkerClient } from "../workers/client.ts";
import type {
  PipelineSpec,
  SessionDevice,
  WorkerReply,
  WorkerStatus,
} from "../core/pipelines/protocol.ts";
import { loadCatalog } from "../core/models/catalog.ts";
import { ensureSyntheticModel } from "../core/models/synthetic.ts";
import { pipelineSpec } from "../workers/spec.ts";

/** scripts/bench.ts finds these two by "session on the main thread" / "through the worker". */
const MAIN_THREAD_BENCH = "pipelines - ocr-det 1x3x320x320 run, session on the main thread";
const WORKER_BENCH = "pipelines - ocr-det 1x3x320x320 run through the worker (transferred)";

/** What `--one-shot` prints. Times in ms, sizes in bytes. */
export interface PipelinesOneShot {
  loads: Array<{
    model: string;
    device: SessionDevice;
    /** Cold loads (fresh worker each): load request to reply, as the main thread sees it. */
    coldMs: number[];
    /** Spawn + init (read the model, plugin init) before each cold load. */
    startMs: number[];
    offloadMs: number[];
    rehydrateMs: number[];
    /** Tracked GPU bytes after load, after the first run, after offload, after rehydrate. */
    gpuBytes: { loaded: number; ran: number; offloaded: number; rehydrated: number } | null;
    gpuPeakBytes: number;
  }>;
  rss: Array<{
    build: "wasm" | "webgpu";
    model: string;
    device: SessionDevice;
    beforeBytes: number;
    idleBytes: number;
    loadedBytes: number;
    afterTerminateBytes: number;
  }>;
}

const ROOT = new URL("../", import.meta.url);
const DATA_DIR = decodeURIComponent(new URL("data/", ROOT).pathname);

async function specOf(id: string, numThreads = 1): Promise<PipelineSpec> {
  const catalog = await loadCatalog(null, DATA_DIR);
  const model = catalog.find(id);
  if (!model) throw new Error(`No built-in model "${id}"`);
  return await pipelineSpec({
    modelId: id,
    modelPath: await catalog.materialize(model),
    pluginUrl: model.pluginUrl,
    assets: model.assets,
    numThreads,
  });
}

function ok(reply: WorkerReply, what: string): WorkerStatus {
  if (!reply.ok) throw new Error(`${what} failed (${reply.error.code}): ${reply.error.message}`);
  return reply.status;
}

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const value = await fn();
  return [value, performance.now() - t0];
}

if (Deno.args.includes("--one-shot")) {
  console.log(JSON.stringify(await oneShot()));
  Deno.exit(0);
}

// ---- deno bench: worker vs main thread --------------------------------------------------

const ort = await import("onnxruntime-web");
ort.env.wasm.numThreads = 1;
const DIMS = [1, 3, 320, 320];
const input = new Float32Array(DIMS.reduce((a, b) => a * b, 1)).map((_, i) =>
  0.5 + 0.5 * Math.sin(i / 97)
);
const detSpec = await specOf("ocr-det");
const plainSpec: PipelineSpec = { ...detSpec, pluginUrl: null, assets: {}, numThreads: 1 };
const session = await ort.InferenceSession.create(await Deno.readFile(detSpec.modelPath), {
  executionProviders: ["wasm"],
});
const inputName = session.inputNames[0];
const worker = await WorkerClient.start(plainSpec);
ok(await worker.load("cpu"), "worker load");
globalThis.addEventListener("unload", () => {
  worker.terminate();
  void session.release();
});

Deno.bench({
  name: MAIN_THREAD_BENCH,
  group: "worker-vs-main",
  baseline: true,
  n: 15,
  warmup: 3,
  fn: async () => {
    const out = await session.run({ [inputName]: new ort.Tensor("float32", input, DIMS) });
    for (const t of Object.values(out)) t.dispose();
  },
});

Deno.bench({
  name: WORKER_BENCH,
  group: "worker-vs-main",
  n: 15,
  warmup: 3,
  fn: async (b) => {
    const data = input.slice(); // not timed: the caller hands over a buffer it owns
    b.start();
    ok(await worker.run({ [inputName]: { type: "float32", dims: DIMS, data } }), "worker run");
    b.end();
  },
});

// ---- --one-shot -------------------------------------------------------------------------

async function oneShot(): Promise<PipelinesOneShot> {
  const log = (line: string) => console.error(`[pipelines] ${line}`);
  const rssNow = () => Deno.memoryUsage().rss;
  const settle = () => new Promise((resolve) => setTimeout(resolve, 200));
  const result: PipelinesOneShot = { loads: [], rss: [] };

  // RSS first, in a process that has not run a pipeline yet; one worker at a time.
  const synthetic = await ensureSyntheticModel(`${DATA_DIR}models`, "1MiB");
  const gpuSpec: PipelineSpec = await pipelineSpec({
    modelId: "synthetic-1MiB",
    modelPath: synthetic.path,
  });
  const detSpec = await specOf("ocr-det");
  for (
    const [build, spec, device] of [
      ["wasm", detSpec, "cpu"],
      ["webgpu", detSpec, "gpu"],
    ] as const
  ) {
    await settle();
    const beforeBytes = rssNow();
    const client = await WorkerClient.start(spec);
    await settle();
    const idleBytes = rssNow();
    const status = ok(await client.load(device), `${spec.modelId} load ${device}`);
    if (status.build !== build) throw new Error(`expected the ${build} build, got ${status.build}`);
    await settle();
    const loadedBytes = rssNow();
    client.terminate();
    await client.exited;
    await settle();
    const afterTerminateBytes = rssNow();
    result.rss.push({
      build,
      model: spec.modelId,
      device,
      beforeBytes,
      idleBytes,
      loadedBytes,
      afterTerminateBytes,
    });
    log(
      `rss ${build}: idle +${mb(idleBytes - beforeBytes)}, loaded +${
        mb(loadedBytes - beforeBytes)
      } MB`,
    );
  }

  // Cold loads on the CPU: a fresh worker each time, terminated after.
  const cpuModels = ["ocr-det", "ocr-cls", "ocr-rec", "silero-vad"];
  const COLD = 3;
  for (const id of cpuModels) {
    const spec = await specOf(id);
    const entry: PipelinesOneShot["loads"][number] = {
      model: id,
      device: "cpu",
      coldMs: [],
      startMs: [],
      offloadMs: [],
      rehydrateMs: [],
      gpuBytes: null,
      gpuPeakBytes: 0,
    };
    for (let i = 0; i < COLD; i++) {
      const [client, startMs] = await timed(() => WorkerClient.start(spec));
      try {
        const [reply, coldMs] = await timed(() => client.load("cpu"));
        ok(reply, `${id} load cpu`);
        entry.startMs.push(startMs);
        entry.coldMs.push(coldMs);
      } finally {
        client.terminate();
        await client.exited;
      }
    }
    log(`${id} cpu cold load ${entry.coldMs.map((ms) => ms.toFixed(0)).join(", ")} ms`);
    result.loads.push(entry);
  }

  // The GPU (software WebGPU adapter here): cold load, first run, then offload / rehydrate.
  const width = synthetic.width;
  const gpuEntry: PipelinesOneShot["loads"][number] = {
    model: gpuSpec.modelId,
    device: "gpu",
    coldMs: [],
    startMs: [],
    offloadMs: [],
    rehydrateMs: [],
    gpuBytes: null,
    gpuPeakBytes: 0,
  };
  const runOnce = async (client: WorkerClient) => {
    const name = client.lastStatus.inputs[0]?.name ?? "input";
    const data = new Float32Array(width).map((_, i) => Math.sin(i));
    return ok(await client.run({ [name]: { type: "float32", dims: [1, width], data } }), "run");
  };
  for (let i = 0; i < 2; i++) {
    const [client, startMs] = await timed(() => WorkerClient.start(gpuSpec));
    try {
      const [reply, coldMs] = await timed(() => client.load("gpu"));
      const loaded = ok(reply, "synthetic load gpu");
      gpuEntry.startMs.push(startMs);
      gpuEntry.coldMs.push(coldMs);
      if (i > 0) continue; // the offload / rehydrate cycles run in the first worker
      const ran = await runOnce(client);
      let offloaded = ran;
      let rehydrated = ran;
      for (let cycle = 0; cycle < 3; cycle++) {
        const [off, offMs] = await timed(() => client.offload());
        offloaded = ok(off, "offload");
        const [re, reMs] = await timed(() => client.rehydrate());
        rehydrated = ok(re, "rehydrate");
        if (rehydrated.device !== "gpu") throw new Error("rehydrate stayed on the CPU");
        gpuEntry.offloadMs.push(offMs);
        gpuEntry.rehydrateMs.push(reMs);
        const again = await runOnce(client); // not timed: a swap is followed by a request
        gpuEntry.gpuPeakBytes = Math.max(gpuEntry.gpuPeakBytes, again.gpuPeakBytes);
      }
      gpuEntry.gpuBytes = {
        loaded: loaded.gpuBytes,
        ran: ran.gpuBytes,
        offloaded: offloaded.gpuBytes,
        rehydrated: rehydrated.gpuBytes,
      };
      gpuEntry.gpuPeakBytes = Math.max(gpuEntry.gpuPeakBytes, ran.gpuPeakBytes);
    } finally {
      client.terminate();
      await client.exited;
    }
  }
  log(
    `${gpuSpec.modelId} gpu cold ${gpuEntry.coldMs.map((ms) => ms.toFixed(0)).join(", ")} ms, ` +
      `offload ${gpuEntry.offloadMs.map((ms) => ms.toFixed(0)).join(", ")} ms, ` +
      `rehydrate ${gpuEntry.rehydrateMs.map((ms) => ms.toFixed(0)).join(", ")} ms`,
  );
  result.loads.push(gpuEntry);
  return result;
}

function mb(bytes: number): string {
  return (bytes / 2 ** 20).toFixed(1);
}
