/**
 * Native CPU engine against the wasm fallback on the same model, in one process, runs
 * interleaved (native, wasm, native, …) so that whatever else shares the machine weighs on
 * both alike. Two pipeline workers with the service's defaults (native: every core;
 * wasm: one thread), a generated external-data model of `--size`, batch 1 and `--batch`.
 * Prints `{size, threads, batch, native: {b1, bN}, wasm: {b1, bN}}` (median ms) on stdout.
 *
 *     deno run -A --v8-flags=--wasm-tiering-budget=100000000 bench/engine_ratio.ts --size 1GiB
 * @module
 */
import { parseArgs } from "node:util";
import { parseSyntheticSize, writeSyntheticModel } from "../core/models/synthetic.ts";
import { WorkerClient } from "../workers/client.ts";
import { DEFAULT_ORT_NODE_DIR, defaultCpuThreads } from "../workers/engines/choose.ts";
import type { WorkerReply } from "../core/pipelines/protocol.ts";
import { pipelineSpec } from "../workers/spec.ts";

/** What one comparison measured (median ms per run). */
export interface EngineRatio {
  size: string;
  threads: number;
  batch: number;
  rounds: number;
  native: { b1: number; bN: number };
  wasm: { b1: number; bN: number };
}

const { values } = parseArgs({
  args: Deno.args,
  options: {
    size: { type: "string", default: "1GiB" },
    batch: { type: "string", default: "64" },
    rounds: { type: "string", default: "5" },
  },
});

function ok(reply: WorkerReply, what: string): void {
  if (!reply.ok) throw new Error(`${what}: ${reply.error.code}: ${reply.error.message}`);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<EngineRatio> {
  const size = values.size!;
  const batch = Number(values.batch);
  const rounds = Number(values.rounds);
  const threads = defaultCpuThreads();
  const dir = await Deno.makeTempDir({ prefix: "headroom-ratio-" });
  const clients: WorkerClient[] = [];
  try {
    const info = await writeSyntheticModel(`${dir}/m.onnx`, parseSyntheticSize(size), { seed: 5 });
    const native = await WorkerClient.start(
      await pipelineSpec({
        modelId: "native",
        modelPath: info.path,
        cpuEngine: "native",
        ortNodeDir: DEFAULT_ORT_NODE_DIR,
        cpuThreads: threads,
      }),
    );
    clients.push(native);
    const wasm = await WorkerClient.start(
      await pipelineSpec({ modelId: "wasm", modelPath: info.path, cpuEngine: "wasm" }),
    );
    clients.push(wasm);
    ok(await native.load("cpu"), "native load");
    ok(await wasm.load("cpu"), "wasm load");
    const times = {
      native: { b1: [] as number[], bN: [] as number[] },
      wasm: { b1: [] as number[], bN: [] as number[] },
    };
    const run = async (client: WorkerClient, rows: number) => {
      const data = Float32Array.from({ length: rows * info.width }, (_, i) => Math.sin(i));
      const reply = await client.run({
        input: { type: "float32", dims: [rows, info.width], data },
      });
      ok(reply, "run");
      return reply.ms;
    };
    // Warm-up: the native engine pages its mapped weights in on the first run.
    for (const client of clients) {
      await run(client, 1);
      await run(client, batch);
    }
    for (let i = 0; i < rounds; i++) {
      times.native.b1.push(await run(native, 1));
      times.wasm.b1.push(await run(wasm, 1));
      times.native.bN.push(await run(native, batch));
      times.wasm.bN.push(await run(wasm, batch));
    }
    return {
      size,
      threads,
      batch,
      rounds,
      native: { b1: median(times.native.b1), bN: median(times.native.bN) },
      wasm: { b1: median(times.wasm.b1), bN: median(times.wasm.bN) },
    };
  } finally {
    for (const client of clients) client.terminate();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) {
  console.log(JSON.stringify(await main()));
  Deno.exit(0);
}
