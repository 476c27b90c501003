/**
 * Where one request's time goes, stage by stage, at one client: Headroom in this process
 * (`startHeadroom`, no socket) on the generated 64 MiB model with the native CPU engine,
 * each stage timed alone in a loop (median µs over `--runs`): the v2 / v1 body parse and
 * checks, the answer's building, `scheduler.run` (placement, the host's queue, the worker
 * hop, the session run), a bare WorkerClient run (the hop and the worker's own work,
 * `reply.ms`), onnxruntime-node on this thread, and the whole `app.request` of each route.
 * The least server's own path (`JSON.parse`, the run, `JSON.stringify`) is timed beside.
 * Prints `{stages: {name: µs}}` as JSON on stdout (docs/benchmarks.md reads it).
 *
 *     deno run -A --v8-flags=--wasm-tiering-budget=100000000 bench/request_path.ts --runs 400
 *     … bench/request_path.ts --size 1MiB   # one 512-wide layer: the path without the run
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { ensureSyntheticModel } from "../core/models/synthetic.ts";
import { startHeadroom } from "../server/serve_headroom.ts";
import { WorkerClient } from "../workers/client.ts";
import { pipelineSpec } from "../workers/spec.ts";
import { DEFAULT_ORT_NODE_DIR, defaultCpuThreads } from "../workers/engines/choose.ts";
import { createNativeSession, loadNativeOrt } from "../workers/engines/native.ts";
import { requestBodies } from "./serving_bodies.ts";
import {
  answerResponse,
  HEADER_LENGTH_HEADER,
  inferenceAnswer,
  parseInferenceBody,
} from "../server/oip/infer.ts";
import { jsonTensorSchema, jsonToWire, wireToJson } from "../server/http/tensors.ts";
import { z } from "zod";
import type { WireTensor } from "../core/pipelines/protocol.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    runs: { type: "string", default: "300" },
    // A small model shows the path's own cost where the engine's run would drown it.
    size: { type: "string", default: "64MiB" },
  },
});
const runs = Number(values.runs);

/** Median µs of `fn` over `runs` calls, after a tenth as many to warm up. */
async function time(fn: () => unknown): Promise<number> {
  for (let i = 0; i < Math.max(5, runs / 10); i++) await fn();
  const us: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    us.push((performance.now() - t0) * 1000);
  }
  us.sort((a, b) => a - b);
  return Math.round(us[Math.floor(us.length / 2)]);
}

const root = fileURLToPath(new URL("../", import.meta.url));
const info = await ensureSyntheticModel(`${root}data/bench`, values.size!, {
  width: values.size === "64MiB" ? undefined : 512,
});
const width = info.width;
const threads = defaultCpuThreads();
const values1 = Float32Array.from({ length: width }, (_, i) => Math.sin(i) / 2);
const tensor = (): Record<string, WireTensor> => ({
  input: { type: "float32", dims: [1, width], data: values1.slice() },
});

// The bodies each route gets (the same ones scripts/_lib/serving.ts sends with wrk).
const encoder = new TextEncoder();
const bodies = requestBodies(values1, width);
const v2Json = bodies.json;
const v2Binary = bodies.binary;
const header = { length: bodies.headerLength };
const v1Json = new TextDecoder().decode(bodies.v1);

const stages: Record<string, number> = {};

// 1. onnxruntime-node on this thread, and the least server's own path around it.
{
  const ort = loadNativeOrt(DEFAULT_ORT_NODE_DIR);
  const session = await createNativeSession(ort, info.path, threads, info.fileBytes);
  const feed = () => ({ input: new ort.Tensor("float32", values1.slice(), [1, width]) });
  stages["engine: session.run on the main thread"] = await time(() => session.run(feed()));
  const text = new TextDecoder().decode(v2Json);
  stages["least server: JSON.parse + run + JSON.stringify"] = await time(async () => {
    const { inputs: [input] } = JSON.parse(text);
    const t = new ort.Tensor("float32", Float32Array.from(input.data), input.shape);
    const out = (await session.run({ [input.name]: t })).output;
    return JSON.stringify({ outputs: [{ data: Array.from(out.data as Float32Array) }] });
  });
  await session.release();
}

// 2. A bare worker: the hop (post, structured clone or transfer, reply check) and reply.ms.
{
  const client = await WorkerClient.start(
    await pipelineSpec({
      modelId: "bare",
      modelPath: info.path,
      cpuEngine: "native",
      ortNodeDir: DEFAULT_ORT_NODE_DIR,
      cpuThreads: threads,
    }),
  );
  try {
    const load = await client.load("cpu");
    if (!load.ok) throw new Error(load.error.message);
    let inWorker = 0;
    stages["worker: client.run, round trip"] = await time(async () => {
      const reply = await client.run(tensor());
      if (!reply.ok) throw new Error(reply.error.message);
      inWorker = reply.ms;
    });
    stages["worker: reply.ms (its own time, last run)"] = Math.round(inWorker * 1000);
  } finally {
    client.terminate();
  }
}

// 3. Headroom in process: each stage alone, then the whole request through the app.
await using headroom = await startHeadroom({
  args: ["--gpu", "cpu", "--cpu-engine", "native", "--cpu-threads", String(threads)],
  models: [{ id: "m64", source: info.path }],
  tempPrefix: "headroom-path-",
});
const { scheduler } = headroom.services;
const first = await scheduler.run("m64", { kind: "tensors", tensors: tensor() });
const outputs = (first.output as { tensors: Record<string, WireTensor> }).tensors;

stages["v2 JSON: parseInferenceBody"] = await time(() => parseInferenceBody(v2Json, undefined));
stages["v2 binary: parseInferenceBody"] = await time(() =>
  parseInferenceBody(v2Binary, String(header.length))
);
// The v1 route's body schema checks its `inputs` with this (bench/ may not import routes/).
const v1Inputs = z.object({ inputs: z.record(z.string(), jsonTensorSchema) });
stages["v1: JSON.parse + zod + jsonToWire"] = await time(() => {
  const body = v1Inputs.parse(JSON.parse(v1Json));
  return jsonToWire(body.inputs);
});
const jsonRequest = parseInferenceBody(v2Json, undefined).request;
const binaryRequest = parseInferenceBody(v2Binary, String(header.length)).request;
stages["v2 JSON: inferenceAnswer + answerResponse"] = await time(() =>
  answerResponse(inferenceAnswer("m64", jsonRequest, outputs)).arrayBuffer()
);
stages["v2 binary: inferenceAnswer + answerResponse"] = await time(() =>
  answerResponse(inferenceAnswer("m64", binaryRequest, outputs)).arrayBuffer()
);
stages["v1: wireToJson + JSON.stringify"] = await time(() =>
  JSON.stringify({ outputs: wireToJson(outputs) })
);
stages["scheduler.run (placement, host queue, worker hop, run)"] = await time(() =>
  scheduler.run("m64", { kind: "tensors", tensors: tensor() })
);
// With Content-Length, as a socket's request has it (without, the body limit counts a stream).
const post = (body: Uint8Array, headers: Record<string, string>) => () =>
  headroom.request("/v2/models/m64/infer", {
    method: "POST",
    headers: { ...headers, "content-length": String(body.length) },
    body: body as Uint8Array<ArrayBuffer>,
  }).then((r) => r.arrayBuffer());
stages["app.request: v2 JSON"] = await time(
  post(v2Json, { "content-type": "application/json" }),
);
stages["app.request: v2 binary"] = await time(
  post(v2Binary, {
    "content-type": "application/octet-stream",
    [HEADER_LENGTH_HEADER]: String(header.length),
  }),
);
stages["app.request: /api/v1 infer"] = await time(() =>
  headroom.request("/api/v1/pipelines/m64/infer", {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "content-length": String(encoder.encode(v1Json).length),
    },
    body: v1Json,
  }).then((r) => r.arrayBuffer())
);

console.log(JSON.stringify({ size: values.size, runs, threads, width, stages }, null, 2));
