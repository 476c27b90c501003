/**
 * The least batching server: the least server (bench/least_server.ts) with Headroom's
 * shape, an engine worker and dynamic batching, and nothing else. `Deno.serve`,
 * `req.json()`; requests wait in one list and run as one batch in a Web Worker
 * (bench/least_batching_worker.ts), the next batch waiting for the callers the last one
 * answered as Headroom's batcher does (`batchWaitUntil`, core/pipelines/batch.ts); the
 * output rows go back as `Response.json`. No routing, validation, placement, deadlines,
 * metrics or connection guard: what the serving bench's 16-client target asks of a
 * server on these cores, measured on the same machine as Headroom.
 * Takes the Open Inference Protocol's JSON body (one input, flat `data`), as the least
 * server does; `GET /runs` counts its runs and rows (a test checks that it batches). Prints
 * its URL once listening.
 *
 *     deno run -A bench/least_batching_server.ts MODEL.onnx THREADS
 * @module
 */
import { batchWaitUntil, DEFAULT_BATCH, type ReturningCallers } from "../core/pipelines/batch.ts";
import type { LeastWorkerRequest } from "./least_batching_worker.ts";

const [modelPath, threads] = Deno.args;

/** One request waiting for its batch. */
interface Waiting {
  name: string;
  data: number[];
  arrivedAt: number;
  answer(row: Float32Array, width: number): void;
}

const worker = new Worker(new URL("./least_batching_worker.ts", import.meta.url), {
  type: "module",
});
const send = (request: LeastWorkerRequest, transfer: Transferable[] = []) =>
  worker.postMessage(request, transfer);
let onReply: (reply: { data: Float32Array; ms: number }) => void = () => {};
await new Promise<void>((resolve) => {
  worker.onmessage = () => resolve();
  send({ type: "init", modelPath, threads: Number(threads) });
});
worker.onmessage = (event) => onReply(event.data);

const waiting: Waiting[] = [];
let running = false;
let returning: ReturningCallers | null = null;
let timer: ReturnType<typeof setTimeout> | undefined;
const counts = { runs: 0, rows: 0 };

/** Starts a batch when the engine is free and the wait rule says so. */
function maybeRun(): void {
  if (running || waiting.length === 0) return;
  clearTimeout(timer);
  const until = batchWaitUntil({
    firstArrivedAt: waiting[0].arrivedAt,
    rows: Math.min(waiting.length, DEFAULT_BATCH.max),
    limit: DEFAULT_BATCH.max,
    delayMs: DEFAULT_BATCH.delayMs,
  }, returning);
  const left = until - performance.now();
  if (left > 0) {
    timer = setTimeout(maybeRun, left);
    return;
  }
  const batch = waiting.splice(0, DEFAULT_BATCH.max);
  const width = batch[0].data.length;
  const data = new Float32Array(batch.length * width);
  batch.forEach((w, i) => data.set(w.data, i * width));
  running = true;
  counts.runs++;
  counts.rows += batch.length;
  onReply = (reply) => {
    const outWidth = reply.data.length / batch.length;
    batch.forEach((w, i) =>
      w.answer(reply.data.subarray(i * outWidth, (i + 1) * outWidth), outWidth)
    );
    running = false;
    // Headroom's rule: the callers answered and those waiting, due back within the run's time.
    returning = { rows: batch.length + waiting.length, until: performance.now() + reply.ms };
    maybeRun();
  };
  send({ type: "run", name: batch[0].name, data, dims: [batch.length, width] }, [data.buffer]);
}

Deno.serve({
  hostname: "127.0.0.1",
  port: 0,
  onListen: ({ port }) => console.log(`http://127.0.0.1:${port}`),
}, async (req) => {
  if (req.method === "GET") return Response.json(counts);
  const { inputs: [input] } = await req.json();
  return await new Promise<Response>((resolve) => {
    waiting.push({
      name: input.name,
      data: input.data,
      arrivedAt: performance.now(),
      answer: (row, width) =>
        resolve(Response.json({
          model_name: "least",
          outputs: [{ name: "output", shape: [1, width], datatype: "FP32", data: Array.from(row) }],
        })),
    });
    maybeRun();
  });
});
