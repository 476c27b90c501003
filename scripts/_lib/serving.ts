/**
 * The serving benchmark of `deno task bench` (`--only serving`): on the generated 64 MiB
 * model (`deno task gen-model --size 64MiB`, kept in data/bench/) with the native CPU
 * engine, wrk on loopback at 1, 4, 16 and 64 connections against Headroom's v2 JSON, v2
 * binary and /api/v1 infer routes and against the least server (bench/least_server.ts)
 * and the least batching server (bench/least_batching_server.ts: an engine worker and
 * dynamic batching, nothing else), beside onnxruntime-node in this process on the same
 * file at batch 1 and 16, each a turn right after every round of the servers at 1 and 16
 * clients (and at 16 again, each run after the engine's idle time between Headroom's
 * 16-client batches), and the input ingestion of a 1×3×640×640 float32 tensor through
 * the v2 route's own body parser.
 * For Headroom's rounds it also reads Headroom's own account from `/metrics` (a request's
 * queue wait, its batch's session call, the rest). Every ratio it reports compares figures
 * of the same run (these machines are noisy); a ratio between two figures of the same
 * rounds is the median of the rounds' own ratios, each of figures taken seconds apart.
 * @module
 */
import { requestBodies } from "../../bench/serving_bodies.ts";
import { scanOnnxFile } from "../../core/models/external_data.ts";
import { fileURLToPath as fromFileUrl } from "node:url";
import { ensureSyntheticModel } from "../../core/models/synthetic.ts";
import { createNativeSession, loadNativeOrt } from "../../workers/engines/native.ts";
import { DEFAULT_ORT_NODE_DIR, defaultCpuThreads } from "../../workers/engines/choose.ts";
import { encodeTensorBytes } from "../../server/oip/binary.ts";
import {
  HEADER_LENGTH_HEADER,
  parseInferenceBody,
  readInferenceBody,
} from "../../server/oip/infer.ts";
import { type HttpResult, runWrk } from "./http_bench.ts";
import { processCpuMs } from "../../workers/process_figures.ts";
import { SERVICE_V8_FLAGS, startServerProcess } from "./server_process.ts";
import type { SweepRow as BenchRow } from "./size_sweep.ts";

/** The connection counts wrk runs at. */
export const CLIENTS = [1, 4, 16, 64] as const;

/** Rows per run in the in-process batched figure (the batch 16). */
const BATCH = 16;

const MODEL_ID = "m64";
/**
 * Headroom's per-pipeline queue limit in the bench: above the largest client count, with room
 * for the requests a finished wrk round leaves in flight until their connections close.
 */
const QUEUE_LIMIT = 256;

/** One body wrk sends, and where. */
interface Target {
  label: string;
  path: string;
  type: string;
  body: Uint8Array;
  headerLength?: number;
}

/** A progress line on stderr: rewritten in place on a terminal, one line each otherwise. */
function progressLine(total: number): (label: string) => void {
  let step = 0;
  const tty = Deno.stderr.isTerminal();
  const encoder = new TextEncoder();
  return (label) => {
    step++;
    const line = `[serving] ${step}/${total} ${label}`;
    Deno.stderr.writeSync(encoder.encode(tty ? `\r\x1b[K${line}` : `${line}\n`));
    if (tty && step === total) Deno.stderr.writeSync(encoder.encode("\n"));
  };
}

/** A float32 input of `rows` × `width`, the same values every run. */
function inputRows(rows: number, width: number): Float32Array {
  return Float32Array.from({ length: rows * width }, (_, i) => Math.sin(i) / 2);
}

/** The v2 JSON, v2 binary and /api/v1 bodies of one 1×width input, and the least server's. */
function targets(
  width: number,
): { headroom: Target[]; least: Target; leastBatching: Target } {
  const data = inputRows(1, width);
  const { json, binary, headerLength, v1 } = requestBodies(data, width);
  const v2 = `/v2/models/${MODEL_ID}/infer`;
  return {
    headroom: [
      { label: "v2 JSON", path: v2, type: "application/json", body: json },
      {
        label: "v2 binary",
        path: v2,
        type: "application/octet-stream",
        body: binary,
        headerLength,
      },
      {
        label: "/api/v1 infer",
        path: `/api/v1/pipelines/${MODEL_ID}/infer`,
        type: "application/json",
        body: v1,
      },
    ],
    least: { label: "least server", path: "/", type: "application/json", body: json },
    leastBatching: {
      label: "least batching server",
      path: "/",
      type: "application/json",
      body: json,
    },
  };
}

/** The first output row a target answers (fetch, once), to check both servers agree. */
async function firstOutput(origin: string, target: Target): Promise<Float32Array> {
  const headers: Record<string, string> = { "content-type": target.type };
  if (target.headerLength !== undefined) {
    headers[HEADER_LENGTH_HEADER] = String(target.headerLength);
  }
  const response = await fetch(`${origin}${target.path}`, {
    method: "POST",
    headers,
    body: target.body as Uint8Array<ArrayBuffer>,
  });
  const bytes = new Uint8Array(await response.arrayBuffer());
  if (response.status !== 200) {
    throw new Error(
      `${target.label} answered ${response.status}: ${new TextDecoder().decode(bytes)}`,
    );
  }
  const length = response.headers.get(HEADER_LENGTH_HEADER);
  if (length !== null) return new Float32Array(bytes.slice(Number(length)).buffer);
  const json = JSON.parse(new TextDecoder().decode(bytes));
  return Float32Array.from(json.outputs.output?.data ?? json.outputs[0].data);
}

/** Throws unless `a` and `b` agree within float32 rounding (same engine, same threads). */
function assertAgree(what: string, a: Float32Array, b: Float32Array): void {
  const worst = a.reduce(
    (m, v, i) => Math.max(m, Math.abs(v - b[i])),
    a.length === b.length ? 0 : Infinity,
  );
  if (!(worst <= 1e-4)) {
    throw new Error(
      `${what}: outputs differ by ${worst}; the bench is not comparing like with like`,
    );
  }
}

/**
 * Where an answered request's time went in Headroom, over one wrk round, from the
 * differences of its `/metrics` (the scheduler's own figures): means per request, in ms.
 */
interface InServiceTimes {
  requests: number;
  totalMs: number;
  queueMs: number;
  computeMs: number;
  /** Mean rows a session call took. */
  batchRows: number;
}

/**
 * A wrk round's figures, with Headroom's own account of the round where it was the target,
 * and the CPU time the server's process (all its threads) spent per request answered.
 */
type ServingResult = HttpResult & { inService?: InServiceTimes; cpuMsPerRequest: number };

/**
 * The histograms' `_sum` and `_count` samples `/metrics` holds for the bench's model now,
 * by sample name (parse-prometheus-text-format drops the labels of histogram series).
 */
async function inferenceSums(origin: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${origin}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const [, name, labels, value] of text.matchAll(/^(\w+_(?:sum|count))\{([^}]*)\} (\S+)$/gm)) {
    if (labels.split(",").includes(`model="${MODEL_ID}"`)) out[name] = Number(value);
  }
  return out;
}

/** {@link InServiceTimes} from two readings of {@link inferenceSums}, before and after a round. */
function inServiceTimes(
  before: Record<string, number>,
  after: Record<string, number>,
): InServiceTimes {
  const delta = (name: string) => (after[name] ?? 0) - (before[name] ?? 0);
  const requests = delta("headroom_inference_request_duration_seconds_count");
  const meanMs = (family: string) => 1000 * delta(`${family}_sum`) / requests;
  return {
    requests,
    totalMs: meanMs("headroom_inference_request_duration_seconds"),
    queueMs: meanMs("headroom_inference_queue_duration_seconds"),
    computeMs: meanMs("headroom_inference_compute_duration_seconds"),
    batchRows: delta("headroom_batch_size_sum") / delta("headroom_batch_size_count"),
  };
}

/** Rounds per figure: wrk rounds of the targets alternate, so load from elsewhere weighs on all alike. */
const ROUNDS = 3;

/**
 * wrk against every target at each client count, after a warm-up: for each client count,
 * {@link ROUNDS} rounds of `seconds / ROUNDS` each, the targets in turn within a round;
 * each figure is the round with the median throughput (its p50 and p99 with it, and for a
 * Headroom target the round's {@link InServiceTimes}).
 */
async function wrkAll(
  list: Array<{ origin: string; pid: number; target: Target; headroom: boolean }>,
  clientCounts: readonly number[],
  seconds: number,
  dir: string,
  step: (label: string) => void,
  engineSlot?: EngineSlot,
): Promise<WrkFigures> {
  const script = fromFileUrl(new URL("../../bench/wrk_post.lua", import.meta.url));
  const runs = await Promise.all(list.map(async ({ origin, pid, target, headroom }, i) => {
    const file = `${dir}/body${i}`;
    await Deno.writeFile(file, target.body);
    const env = {
      WRK_BODY: file,
      WRK_TYPE: target.type,
      WRK_HEADER_LENGTH: target.headerLength === undefined ? "" : String(target.headerLength),
    };
    return {
      url: `${origin}${target.path}`,
      label: target.label,
      env,
      origin,
      pid,
      target,
      headroom,
    };
  }));
  for (const { url, env } of runs) {
    await runWrk(url, 1, { connections: 4, script, env }); // warm-up
  }
  const out = new Map<string, ServingResult>();
  const rounds = new Map<string, ServingResult[]>();
  const engineRounds = new Map<number, EngineFigures[]>();
  const roundSeconds = Math.max(1, Math.round(seconds / ROUNDS));
  for (const clients of clientCounts) {
    step(
      `wrk, ${clients} client${
        clients === 1 ? "" : "s"
      }: ${ROUNDS} rounds of ${roundSeconds} s per target`,
    );
    const seen = new Map<string, ServingResult[]>();
    for (let round = 0; round < ROUNDS; round++) {
      for (const { url, label, env, origin, pid, target, headroom } of runs) {
        const before = headroom ? await inferenceSums(origin) : null;
        const cpuBefore = processCpuMs(pid) ?? NaN;
        const round = await runWrk(url, roundSeconds, {
          connections: clients,
          timeoutSeconds: 60,
          script,
          env,
        });
        const result: ServingResult = {
          ...round,
          cpuMsPerRequest: ((processCpuMs(pid) ?? NaN) - cpuBefore) / round.requests,
        };
        if (result.errors > 0) {
          throw new Error(`${label} at ${clients} clients: ${result.errors} failed requests`);
        }
        // What a round left in flight ends before the next starts: one request more, answered
        // after them (the least server runs what a gone client sent; Headroom drops it).
        await firstOutput(origin, target);
        if (before) result.inService = inServiceTimes(before, await inferenceSums(origin));
        seen.set(label, [...seen.get(label) ?? [], result]);
      }
      const rows = engineSlot?.rowsAt(clients);
      if (rows !== undefined) {
        const figures = await engineSlot!.engine.measure({ rows, pauseMs: 0 }, roundSeconds);
        engineRounds.set(clients, [...engineRounds.get(clients) ?? [], figures]);
      }
    }
    for (const [label, results] of seen) {
      rounds.set(`${label}@${clients}`, results);
      const sorted = [...results].sort((a, b) => a.requestsPerSecond - b.requestsPerSecond);
      out.set(`${label}@${clients}`, sorted[Math.floor(sorted.length / 2)]);
    }
  }
  return { medians: out, rounds, engineRounds };
}

/** What {@link wrkAll} measured: each figure's median round, and every round in order. */
interface WrkFigures {
  /** By `label@clients`: the round with the median throughput. */
  medians: Map<string, ServingResult>;
  /** By `label@clients`: every round, in the order they ran. */
  rounds: Map<string, ServingResult[]>;
  /** By client count: the in-process engine's run after each round ({@link EngineSlot}). */
  engineRounds: Map<number, EngineFigures[]>;
}

/**
 * The in-process engine as one more turn of a round: after the servers' turns at a client
 * count it names a batch size for, the engine runs that batch back to back as long as a
 * server's turn lasts, so a server's figure and the engine's it is divided by are taken
 * seconds apart, not minutes (this machine's speed moves by a third within a day).
 */
interface EngineSlot {
  engine: InProcessEngine;
  /** The batch the engine runs after a round at `clients`, or undefined for none. */
  rowsAt(clients: number): number | undefined;
}

/** How a paired ratio is taken, for the notes. */
const PAIRED = `same run, the median of ${ROUNDS} rounds' ratios, each of two figures taken ` +
  "seconds apart in one round";

/** The median over rounds of `a`'s throughput over `b`'s in the same round. */
function pairedRatio(a: readonly number[], b: readonly number[]): number {
  const ratios = a.map((x, i) => x / b[i]).sort((x, y) => x - y);
  return ratios[Math.floor(ratios.length / 2)];
}

/** One way to run the engine in process: `rows` rows a run, each run `pauseMs` after the last. */
interface EngineRun {
  rows: number;
  pauseMs: number;
}

/** What the engine did in process over one {@link EngineRun}. */
interface EngineFigures {
  /** Runs a second, the pauses left out (each run's own time only). */
  runsPerSecond: number;
  medianMs: number;
  /** CPU time of this process a row; NaN for a paused run (its busy wait is CPU time too). */
  cpuMsPerRow: number;
}

/** onnxruntime-node on this thread, open for the whole bench: the in-process figures. */
interface InProcessEngine {
  /**
   * Runs `run` for `seconds` after a short warm-up. A pause is waited out on this thread
   * (a busy wait, to the microsecond); the engine's threads are idle through it, as a
   * server's engine is while its HTTP side answers one batch and reads the next.
   */
  measure(run: EngineRun, seconds: number): Promise<EngineFigures>;
  release(): Promise<void>;
}

/** Opens the bench's model on the native engine with `threads`, as the servers do. */
async function openEngine(
  modelPath: string,
  threads: number,
  width: number,
): Promise<InProcessEngine> {
  const ort = loadNativeOrt(DEFAULT_ORT_NODE_DIR);
  const { totalBytes } = await scanOnnxFile(modelPath);
  const session = await createNativeSession(ort, modelPath, threads, totalBytes);
  const feeds = new Map<number, Record<string, InstanceType<typeof ort.Tensor>>>();
  const warmed = new Set<number>();
  return {
    async measure({ rows, pauseMs }, seconds) {
      let feed = feeds.get(rows);
      if (!feed) {
        feed = { input: new ort.Tensor("float32", inputRows(rows, width), [rows, width]) };
        feeds.set(rows, feed);
      }
      // Warm-up: the first use pages the weights in; later ones bring them back to cache.
      for (let i = 0; i < (warmed.has(rows) ? 5 : 20); i++) await session.run(feed);
      warmed.add(rows);
      const times: number[] = [];
      const cpuBefore = processCpuMs("self") ?? NaN;
      const start = performance.now();
      while (performance.now() - start < seconds * 1000) {
        const resume = performance.now() + pauseMs;
        while (performance.now() < resume) { /* the pause */ }
        const t0 = performance.now();
        await session.run(feed);
        times.push(performance.now() - t0);
      }
      const cpuMs = (processCpuMs("self") ?? NaN) - cpuBefore;
      times.sort((a, b) => a - b);
      return {
        runsPerSecond: 1000 * times.length / times.reduce((a, b) => a + b, 0),
        medianMs: times[Math.floor(times.length / 2)],
        cpuMsPerRow: pauseMs > 0 ? NaN : cpuMs / (times.length * rows),
      };
    },
    release: () => session.release(),
  };
}

/** The median ms of `fn` over `runs` calls (after one warm-up call). */
async function medianMs(runs: number, fn: () => unknown): Promise<number> {
  await fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

/**
 * Ingestion of a 1×3×640×640 float32 tensor as the v2 infer route takes it, in this process:
 * `readInferenceBody` (the body read from a stream of 64 KiB chunks, as a socket gives it,
 * with its Content-Length) then `parseInferenceBody` (header, schema, sizes, typed array):
 * the tensor's bytes per second, as binary data and as JSON numbers.
 */
async function ingestion(): Promise<
  Array<{ format: string; bodyBytes: number; ms: number; gbPerSecond: number }>
> {
  const dims = [1, 3, 640, 640];
  const data = Float32Array.from({ length: 3 * 640 * 640 }, (_, i) => Math.fround(Math.sin(i)));
  const tensorBytes = data.byteLength;
  const bytes = encodeTensorBytes({ type: "float32", dims, data });
  const header = new TextEncoder().encode(JSON.stringify({
    inputs: [{
      name: "images",
      shape: dims,
      datatype: "FP32",
      parameters: { binary_data_size: bytes.length },
    }],
  }));
  const binary = new Uint8Array(header.length + bytes.length);
  binary.set(header);
  binary.set(bytes, header.length);
  const json = new TextEncoder().encode(JSON.stringify({
    inputs: [{ name: "images", shape: dims, datatype: "FP32", data: Array.from(data) }],
  }));
  const ingest = async (body: Uint8Array, headerLength: string | undefined) => {
    // The socket's chunks (views, made before the clock starts: the socket's own cost).
    const chunks = Array.from(
      { length: Math.ceil(body.length / 65_536) },
      (_, i) => body.subarray(i * 65_536, (i + 1) * 65_536),
    );
    let next = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (next < chunks.length) controller.enqueue(chunks[next++]);
        else controller.close();
      },
    });
    const request = new Request("http://127.0.0.1/v2/models/m/infer", {
      method: "POST",
      headers: { "content-length": String(body.length) },
      body: stream,
      duplex: "half",
    } as RequestInit);
    return parseInferenceBody(await readInferenceBody(request, headerLength), headerLength);
  };
  const binaryMs = await medianMs(20, () => ingest(binary, String(header.length)));
  const jsonMs = await medianMs(3, () => ingest(json, undefined));
  return [
    {
      format: "binary",
      bodyBytes: binary.length,
      ms: binaryMs,
      gbPerSecond: tensorBytes / binaryMs / 1e6,
    },
    { format: "JSON", bodyBytes: json.length, ms: jsonMs, gbPerSecond: tensorBytes / jsonMs / 1e6 },
  ];
}

/**
 * Serves `modelPath` from the least server and from Headroom (main.ts, its own process, the
 * native CPU engine), checks that both answer the same numbers, and runs {@link wrkAll} on
 * the least server and Headroom's three routes at `clientCounts`.
 */
async function serveAndLoad(
  root: string,
  modelPath: string,
  width: number,
  threads: number,
  clientCounts: readonly number[],
  seconds: number,
  dir: string,
  step: (label: string) => void,
  engineSlot?: EngineSlot,
): Promise<WrkFigures> {
  const { headroom, least, leastBatching } = targets(width);
  await Deno.writeTextFile(
    `${dir}/models.json`,
    JSON.stringify({ models: [{ id: MODEL_ID, source: modelPath }] }),
  );
  await using leastServer = await startServerProcess({
    args: ["run", "--allow-all", "bench/least_server.ts", modelPath, String(threads)],
    cwd: root,
    stopSignal: "SIGKILL",
  });
  await using leastBatchingServer = await startServerProcess({
    args: ["run", "--allow-all", "bench/least_batching_server.ts", modelPath, String(threads)],
    cwd: root,
    stopSignal: "SIGKILL",
  });
  await using server = await startServerProcess({
    args: [
      "run",
      SERVICE_V8_FLAGS,
      "--allow-all",
      "main.ts",
      "--port",
      "0",
      "--models",
      `${dir}/models.json`,
      "--gpu",
      "cpu",
      "--cpu-engine",
      "native",
      "--cpu-threads",
      String(threads),
      // Above the 64 clients: with the default (32) the rest are answered 429 at once.
      "--queue-limit",
      String(QUEUE_LIMIT),
    ],
    cwd: root,
    env: { HEADROOM_DATA_DIR: `${dir}/data-${crypto.randomUUID()}` },
    stopSignal: "SIGKILL",
  });
  const leastOut = await firstOutput(leastServer.url, least);
  assertAgree(
    "the least batching server vs the least server",
    await firstOutput(leastBatchingServer.url, leastBatching),
    leastOut,
  );
  for (const target of headroom) {
    assertAgree(
      `${target.label} vs the least server`,
      await firstOutput(server.url, target),
      leastOut,
    );
  }
  return await wrkAll(
    [
      { origin: leastServer.url, pid: leastServer.pid, target: least, headroom: false },
      {
        origin: leastBatchingServer.url,
        pid: leastBatchingServer.pid,
        target: leastBatching,
        headroom: false,
      },
      ...headroom.map((target) => ({
        origin: server.url,
        pid: server.pid,
        target,
        headroom: true,
      })),
    ],
    clientCounts,
    seconds,
    dir,
    step,
    engineSlot,
  );
}

/** Runs the serving benchmark and turns it into rows of bench/results.json. */
export async function servingRows(
  root: string,
  seconds: number,
  log: (line: string) => void,
): Promise<BenchRow[]> {
  const threads = defaultCpuThreads();
  log(`[serving] the 64 MiB model (data/bench/), native CPU engine, ${threads} threads`);
  const info = await ensureSyntheticModel(`${root}data/bench`, "64MiB");
  const width = info.width;
  const { headroom, least, leastBatching } = targets(width);
  const references = [least.label, leastBatching.label];
  const step = progressLine(3 + CLIENTS.length);
  const dir = await Deno.makeTempDir({ prefix: "headroom-serving-" });
  const rows: BenchRow[] = [];
  try {
    step("ingestion of a 1×3×640×640 float32 tensor");
    const ingest = await ingestion();
    // The engine in process runs after each round: batch 1 after the 1-client rounds, batch
    // 16 after the 16-client ones (EngineSlot), its figure the median of those turns.
    const inProcess = await openEngine(info.path, threads, width);
    const engineRows: Record<number, number> = { 1: 1, 16: BATCH };
    const measured = await serveAndLoad(
      root,
      info.path,
      width,
      threads,
      CLIENTS,
      seconds,
      dir,
      step,
      { engine: inProcess, rowsAt: (clients) => engineRows[clients] },
    );
    const results = measured.medians;
    const medianRound = (clients: number) => {
      const turns = [...measured.engineRounds.get(clients)!]
        .sort((a, b) => a.runsPerSecond - b.runsPerSecond);
      return turns[Math.floor(turns.length / 2)];
    };
    const engine: Record<number, EngineFigures> = { 1: medianRound(1), [BATCH]: medianRound(16) };
    /** Each round's throughput of `label` at `clients` (a row a request). */
    const perRound = (label: string, clients: number) =>
      measured.rounds.get(`${label}@${clients}`)!.map((r) => r.requestsPerSecond);
    /** Each round's in-process rows/s at batch 16, the turn after that round's servers. */
    const engineRowsPerRound = measured.engineRounds.get(16)!.map((f) => f.runsPerSecond * BATCH);
    // The engine's idle time between v2 binary's 16-client batches: a batch's share of the
    // median round less its session call. The engine then runs in process after that pause.
    const binary16 = results.get("v2 binary@16")!;
    const pauseMs = Math.max(
      0,
      binary16.inService!.batchRows * 1000 / binary16.requestsPerSecond -
        binary16.inService!.computeMs,
    );
    step(`onnxruntime-node in process, batch ${BATCH}, ${pauseMs.toFixed(2)} ms apart`);
    const engineSeconds = Math.max(2, seconds / 2);
    const paused = await inProcess.measure({ rows: BATCH, pauseMs }, engineSeconds);
    const backToBack = await inProcess.measure({ rows: BATCH, pauseMs: 0 }, engineSeconds);
    await inProcess.release();
    for (const label of [...headroom.map((t) => t.label), ...references]) {
      for (const clients of CLIENTS) {
        const r = results.get(`${label}@${clients}`)!;
        rows.push({
          name: `serving - ${label}, ${clients} client${clients === 1 ? "" : "s"}`,
          value: r.requestsPerSecond,
          unit: "req/s",
          note:
            `wrk -c${clients} on loopback, median of ${ROUNDS} rounds alternating with the other targets; p50 ${
              r.p50Ms.toFixed(2)
            } ms, ` +
            `p99 ${
              r.p99Ms.toFixed(2)
            } ms; 1×${width} float32, 64 MiB model, native CPU engine, ${threads} threads`,
        });
      }
    }
    const inNote = `onnxruntime-node in the bench process, same file, ${threads} threads`;
    const turns = (clients: number) =>
      `the median of ${ROUNDS} turns, each right after a round of the servers at ${clients} ` +
      `client${clients === 1 ? "" : "s"}`;
    rows.push({
      name: "serving - onnxruntime-node in process, batch 1",
      value: engine[1].runsPerSecond,
      unit: "runs/s",
      note: `${inNote}; ${turns(1)}; median ${engine[1].medianMs.toFixed(2)} ms a run`,
    });
    rows.push({
      name: `serving - onnxruntime-node in process, batch ${BATCH}`,
      value: engine[BATCH].runsPerSecond * BATCH,
      unit: "rows/s",
      note: `${inNote}; ${turns(16)}; median ${engine[BATCH].medianMs.toFixed(2)} ms a run`,
    });
    rows.push({
      name: `serving - onnxruntime-node in process, batch ${BATCH}, after the server's pause`,
      value: paused.medianMs,
      unit: "ms",
      note: `${inNote}; median of runs each ${pauseMs.toFixed(2)} ms after the last (the ` +
        "engine's idle time between v2 binary's 16-client batches: its batch's rows / its " +
        "req/s, less the batch's session call); back to back just after: " +
        `${backToBack.medianMs.toFixed(2)} ms`,
    });
    rows.push({
      name: `serving - onnxruntime-node in process, batch ${BATCH}: a run after the server's ` +
        "pause over one back to back",
      value: paused.medianMs / backToBack.medianMs,
      unit: "ratio",
      note: "same run; what the pause alone costs the engine's next run on this machine " +
        '(docs/benchmarks.md, "The engine after a pause"); the in-process figure the ≥ 0.6 ' +
        "target divides by runs back to back, which no server that answers a batch before it " +
        "reads the next can do",
    });
    // CPU a request, every thread of the server's process, and what it allows on these cores.
    const cores = navigator.hardwareConcurrency;
    for (const label of [...headroom.map((t) => t.label), ...references]) {
      for (const clients of [1, 16]) {
        const r = results.get(`${label}@${clients}`)!;
        rows.push({
          name: `serving - ${label}, ${clients} client${clients === 1 ? "" : "s"}: CPU a request`,
          value: r.cpuMsPerRequest,
          unit: "ms",
          note: "user + system CPU time of the server's process (every thread: HTTP, engine, " +
            `GC) over the median round, / its ${r.requests} requests (/proc, 10 ms ticks)`,
        });
      }
    }
    for (const rows_ of [1, BATCH]) {
      rows.push({
        name: `serving - onnxruntime-node in process, batch ${rows_}: CPU a row`,
        value: engine[rows_].cpuMsPerRow,
        unit: "ms",
        note: `${inNote}; user + system CPU time of the bench process over the timed runs, / rows`,
      });
    }
    for (const format of ["v2 JSON", "v2 binary"]) {
      const cpu = results.get(`${format}@16`)!.cpuMsPerRequest;
      rows.push({
        name: `serving - ${format}, 16 clients: the most ${cores} cores allow at its CPU a ` +
          `request, over in-process batch ${BATCH}`,
        value: (cores * 1000 / cpu) / (engine[BATCH].runsPerSecond * BATCH),
        unit: "ratio",
        note: `same run: ${cores} cores × 1000 / its CPU ms a request, over the engine's rows/s ` +
          `at batch ${BATCH}: a ceiling, reached only with every core busy serving; the ` +
          "≥ 0.6 target is out of reach while this is below 0.6",
      });
    }
    // Headroom's own account of a request at 1 and 16 clients (the median round's /metrics).
    for (const format of ["v2 JSON", "v2 binary"]) {
      for (const clients of [1, 16]) {
        const times = results.get(`${format}@${clients}`)!.inService!;
        rows.push({
          name: `serving - ${format}, ${clients} client${
            clients === 1 ? "" : "s"
          }: a request in the scheduler`,
          value: times.totalMs,
          unit: "ms",
          note: `mean over the median round's ${times.requests} requests, from /metrics: ` +
            `queue ${times.queueMs.toFixed(2)} ms, compute ${times.computeMs.toFixed(2)} ms ` +
            `(its batch's session call; batches of ${times.batchRows.toFixed(1)} rows), the ` +
            "rest the worker hop and placement; HTTP lies outside it",
        });
      }
    }
    for (const format of ["v2 JSON", "v2 binary"]) {
      const one = results.get(`${format}@1`)!.requestsPerSecond;
      const sixteen = results.get(`${format}@16`)!.requestsPerSecond;
      rows.push({
        name: `serving - ${format}, 16 clients over 1 client`,
        value: sixteen / one,
        unit: "ratio",
        target: "≥ 3",
        note: "same run; one row per request",
      });
      rows.push({
        name: `serving - ${format}, 16 clients over in-process batch ${BATCH}`,
        value: pairedRatio(perRound(format, 16), engineRowsPerRound),
        unit: "ratio",
        target: "≥ 0.6",
        note: `${PAIRED}; req/s (a row each) over the engine's rows/s at batch ${BATCH} in ` +
          "its turn after the round",
      });
      rows.push({
        name: `serving - ${format}, 1 client over the least server`,
        value: pairedRatio(perRound(format, 1), perRound(least.label, 1)),
        unit: "ratio",
        target: "≥ 0.85",
        note: `${PAIRED}; same body (v2 JSON to the least server)`,
      });
      for (const clients of [1, 16]) {
        rows.push({
          name: `serving - ${format}, ${clients} client${
            clients === 1 ? "" : "s"
          } over the least batching server`,
          value: pairedRatio(perRound(format, clients), perRound(leastBatching.label, clients)),
          unit: "ratio",
          note: `${PAIRED}; what Headroom's own request path costs against the same design ` +
            "(an engine worker, dynamic batching) with nothing else",
        });
      }
    }
    rows.push({
      name: `serving - least batching server, 16 clients over in-process batch ${BATCH}`,
      value: pairedRatio(perRound(leastBatching.label, 16), engineRowsPerRound),
      unit: "ratio",
      note: `${PAIRED}; what a server of Headroom's shape reaches on these cores when its ` +
        "request path costs next to nothing",
    });
    rows.push({
      name: "serving - least batching server, 1 client over the least server",
      value: pairedRatio(perRound(leastBatching.label, 1), perRound(least.label, 1)),
      unit: "ratio",
      note: `${PAIRED}; what the engine worker's hop alone costs a request against a run on ` +
        "the main thread, with nothing else on the path",
    });
    // The path's own cost: a model whose run is ~0.1 ms, at one client, beside the least server.
    const small = await ensureSyntheticModel(`${root}data/bench`, "1MiB", { width });
    const path =
      (await serveAndLoad(root, small.path, width, threads, [1], seconds, dir, step)).medians;
    const floor = 1e6 / path.get(`${least.label}@1`)!.requestsPerSecond;
    rows.push({
      name: "serving - 1 MiB model, least server, 1 client",
      value: floor,
      unit: "µs/request",
      note: `1e6 / its wrk -c1 req/s; one 512-wide layer (a run of ~0.1 ms)`,
    });
    for (const target of headroom) {
      rows.push({
        name: `serving - 1 MiB model, ${target.label}, 1 client, above the least server`,
        value: 1e6 / path.get(`${target.label}@1`)!.requestsPerSecond - floor,
        unit: "µs/request",
        note: "same run: 1e6 / req/s of each, at wrk -c1, less the least server's; " +
          "the request path's own cost (bench/request_path.ts splits it by stage)",
      });
    }
    for (const r of ingest) {
      rows.push({
        name: `serving - ingestion of a 1×3×640×640 float32 tensor, ${r.format}`,
        value: r.gbPerSecond,
        unit: "GB/s",
        target: r.format === "binary" ? "≥ 1" : undefined,
        note: `tensor bytes (4.9 MB) / median ${r.ms.toFixed(2)} ms of readInferenceBody + ` +
          `parseInferenceBody (the v2 route's read, parse and checks, in process) on a ${
            (r.bodyBytes / 1e6).toFixed(1)
          } MB body`,
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  return rows;
}
