/**
 * Dynamic batching: the concatenation and split (every element type), the host's queue
 * (priorities, moves kept in order, a bad or cancelled caller alone, a batch that runs
 * out of memory split in halves and capped) on a worker double that records each run's
 * rows, and the whole path on the native CPU engine: 16 concurrent requests answered
 * bit-exactly as one at a time, in batches the row and `/metrics` show.
 */
import assert from "node:assert/strict";
import {
  batchShape,
  batchWaitUntil,
  canBatch,
  concatRows,
  splitRows,
} from "../core/pipelines/batch.ts";
import {
  type RunInput,
  TENSOR_ARRAYS,
  TENSOR_TYPES,
  type TensorType,
  type WireTensor,
  type WorkerReply,
  type WorkerStatus,
} from "../core/pipelines/protocol.ts";
import { Catalog, type CatalogModel } from "../core/models/catalog.ts";
import { EventLog } from "../core/events.ts";
import { PipelineError } from "../core/pipelines/pipeline_error.ts";
import { QueueAbortedError } from "../core/serial_queue.ts";
import { PipelineManager, type WorkerHandle } from "../workers/manager.ts";
import { doubleCatalogModel } from "./_worker_double.ts";
import { startService } from "../server/service.ts";
import { testConfig } from "./_service.ts";
import { tempDirSync } from "./_temp.ts";

// ---- the arithmetic ------------------------------------------------------------------------

function tensorOf(type: TensorType, rows: number, seed: number): WireTensor {
  const length = rows * 2;
  if (type === "string") {
    return { type, dims: [rows, 2], data: Array.from({ length }, (_, i) => `s${seed}-${i}`) };
  }
  const data = new TENSOR_ARRAYS[type](length);
  for (let i = 0; i < length; i++) {
    const value = (seed * 7 + i) % 100;
    (data as Float64Array)[i] = (typeof data[0] === "bigint" ? BigInt(value) : value) as number;
  }
  return { type, dims: [rows, 2], data };
}

Deno.test("batch - concatenated along dim 0 and split back by rows, for every element type", () => {
  const requests = [1, 3, 2].map((rows, r) =>
    Object.fromEntries(TENSOR_TYPES.map((type) => [`in_${type}`, tensorOf(type, rows, r)]))
  );
  const keys = requests.map((tensors) => batchShape(tensors));
  assert.deepEqual(keys.map((k) => k?.rows), [1, 3, 2]);
  assert.equal(new Set(keys.map((k) => k?.key)).size, 1, "one key: they can share a run");
  const joined = concatRows(requests);
  for (const type of TENSOR_TYPES) assert.deepEqual(joined[`in_${type}`].dims, [6, 2]);
  const parts = splitRows(joined, [1, 3, 2]);
  assert.ok(parts);
  parts.forEach((part, i) => {
    for (const type of TENSOR_TYPES) {
      const name = `in_${type}`;
      assert.deepEqual(part[name].dims, requests[i][name].dims);
      const values = (t: WireTensor) => Array.from(t.data as ArrayLike<unknown>);
      assert.deepEqual(values(part[name]), values(requests[i][name]), name);
      const own = part[name].data, whole = joined[name].data;
      if (!Array.isArray(own) && !Array.isArray(whole)) {
        assert.notEqual(own.buffer, whole.buffer, "its own buffer");
      }
    }
  });
  assert.equal(splitRows(joined, [1, 3]), null, "outputs of another row count are not split");
});

Deno.test("batch - keys, row counts and which models can batch", () => {
  const x = (dims: number[]) => ({ type: "float32" as const, dims, data: new Float32Array(0) });
  assert.notEqual(batchShape({ x: x([1, 4]) })?.key, batchShape({ x: x([1, 5]) })?.key);
  assert.equal(batchShape({ x: x([2, 4]), y: x([3, 4]) }), null, "inputs disagree on dim 0");
  assert.equal(batchShape({ x: x([]) }), null, "a scalar has no rows");
  const free = { name: "x", type: "float32" as const, dims: ["N", 4] };
  const fixed = { name: "x", type: "float32" as const, dims: [1, 4] };
  assert.equal(canBatch([free], [{ ...free, name: "y" }]), true);
  assert.equal(canBatch([free], [{ ...fixed, name: "y" }]), false);
  assert.equal(canBatch([{ ...free, dims: [-1, 4] }], [{ ...free, dims: [-1] }]), true);
  assert.equal(canBatch([free], []), false, "outputs the session does not tell");
});

Deno.test("batch - a turn waits for the callers the last run answered, no longer than it took", () => {
  const turn = { firstArrivedAt: 100, rows: 3, limit: 32, delayMs: 0 };
  assert.equal(batchWaitUntil(turn, null), 100, "no run yet: no wait");
  assert.equal(batchWaitUntil(turn, { rows: 16, until: 104 }), 104, "16 expected, 3 here: wait");
  assert.equal(batchWaitUntil({ ...turn, rows: 16 }, { rows: 16, until: 104 }), 100, "all back");
  assert.equal(batchWaitUntil(turn, { rows: 1, until: 104 }), 100, "one client: never waits");
  assert.equal(batchWaitUntil({ ...turn, limit: 3 }, { rows: 16, until: 104 }), -Infinity, "full");
  assert.equal(
    batchWaitUntil({ ...turn, limit: 8 }, { rows: 16, until: 104 }),
    104,
    "expects the limit at most",
  );
  assert.equal(batchWaitUntil({ ...turn, delayMs: 10 }, { rows: 16, until: 104 }), 110, "delayMs");
});

// ---- the host's queue, on a worker double ----------------------------------------------------

/** A worker whose model doubles `x` [N, 4] into `y`; it records each run's rows. */
class RowWorker {
  /** Rows of each run, in order, with the first value of each row. */
  readonly runs: number[][] = [];
  device: "gpu" | "cpu" | "none" = "none";
  /** Runs above this many rows fail with out-of-memory on the GPU. */
  oomAbove = Infinity;
  /** While set, each run waits for it. */
  gate: Promise<void> | null = null;
  /** The run time each run's reply reports (ms). */
  runMs = 1;
  dead: string | null = null;

  status(): WorkerStatus {
    const io = (name: string) => ({ name, type: "float32" as const, dims: ["N", 4] });
    return {
      device: this.device,
      gpuBuffers: 0,
      gpuBytes: 0,
      gpuPeakBytes: this.device === "gpu" ? 1000 : 0,
      rssBytes: 0,
      inputs: [io("x")],
      outputs: [io("y")],
      build: "wasm",
      engine: this.device === "gpu" ? "webgpu" : this.device === "cpu" ? "wasm" : "none",
      ramBytes: 0,
    };
  }

  handle(): WorkerHandle {
    // deno-lint-ignore no-this-alias
    const w = this;
    const reply = <K extends "load" | "offload" | "unload" | "run">(
      type: K,
      fields: object,
      error?: { code: "oom" | "run_failed"; message: string },
    ) =>
      ({
        id: 0,
        type,
        ok: !error,
        status: w.status(),
        ms: 1,
        ...(error ? { error } : fields),
      }) as unknown as WorkerReply<K>;
    return {
      get lastStatus() {
        return w.status();
      },
      set lastStatus(_v: WorkerStatus) {
        // derived from the double's state; the manager never needs to set it
      },
      get alive() {
        return w.dead === null;
      },
      exited: new Promise(() => {}),
      load(device) {
        w.device = device;
        return Promise.resolve(reply("load", {}));
      },
      async run(input: RunInput | Record<string, WireTensor>) {
        const x = (input as Extract<RunInput, { kind: "tensors" }>).tensors.x;
        const data = x.data as Float32Array;
        const rows = x.dims[0];
        w.runs.push(Array.from({ length: rows }, (_, r) => data[r * 4]));
        if (w.gate) await w.gate;
        if (w.dead) throw new Error("gone");
        if (w.device === "gpu" && rows > w.oomAbove) {
          return reply("run", {}, { code: "oom", message: `${rows} rows do not fit` });
        }
        if (data.includes(-1)) {
          return reply("run", {}, { code: "run_failed", message: "a poisoned row (-1)" });
        }
        const y = Float32Array.from(data, (v) => v * 2);
        return {
          ...reply("run", { output: { kind: "tensors", tensors: { y: { ...x, data: y } } } }),
          ms: w.runMs,
        };
      },
      offload() {
        w.device = "cpu";
        return Promise.resolve(reply("offload", {}));
      },
      rehydrate: () => Promise.reject(new Error("not used")),
      unload() {
        w.device = "none";
        return Promise.resolve(reply("unload", {}));
      },
      parity: () => Promise.reject(new Error("not used")),
      onExit() {},
      terminate(reason = "terminated") {
        w.dead = reason;
      },
    };
  }
}

/** A manager with one pipeline "m" on a {@link RowWorker}, loaded on `device`. */
async function hostWith(
  batch: CatalogModel["batch"],
  device: "gpu" | "cpu" = "gpu",
) {
  const worker = new RowWorker();
  const events = new EventLog(1000);
  const host = new PipelineManager({
    catalog: new Catalog([{ ...doubleCatalogModel("m"), batch }], "/nonexistent"),
    events,
    gpuAvailable: true,
    parityTolerance: null,
    startWorker: () => Promise.resolve(worker.handle()),
    scanModelFile: (path) =>
      Promise.resolve({ path, graphBytes: 0, externalData: [], totalBytes: 0 }),
  });
  await host.load("m", device);
  return { host, worker, events };
}

/** A one-row input whose value is `v` (every element). */
function row(v: number, rows = 1): RunInput {
  return {
    kind: "tensors",
    tensors: { x: { type: "float32", dims: [rows, 4], data: new Float32Array(rows * 4).fill(v) } },
  };
}

/** The first value of each answered row. */
function firstValues(result: { output: { kind: string; tensors?: Record<string, WireTensor> } }) {
  const y = result.output.tensors!.y;
  return Array.from({ length: y.dims[0] }, (_, r) => (y.data as Float32Array)[r * 4]);
}

/** Lets the queue's first turn start (a burst queued in one tick shares the first run). */
const tick = () => new Promise((r) => setTimeout(r, 2));

/** Holds the worker's next runs until the returned function is called. */
function hold(worker: RowWorker): () => void {
  let release!: () => void;
  worker.gate = new Promise((resolve) => (release = resolve));
  return () => {
    worker.gate = null;
    release();
  };
}

Deno.test("batch - what queued while a run ran shares the next run; each caller gets its rows", async () => {
  const { host, worker } = await hostWith({ max: 32, delayMs: 0 });
  const release = hold(worker);
  const first = host.run("m", row(0));
  await tick();
  const rest = [1, 2, 3, 4, 5].map((v) => host.run("m", row(v, v === 3 ? 2 : 1)));
  await new Promise((r) => setTimeout(r, 5));
  release();
  assert.deepEqual(firstValues(await first), [0]);
  const answers = await Promise.all(rest);
  assert.deepEqual(answers.map(firstValues), [[2], [4], [6, 6], [8], [10]]);
  assert.deepEqual(worker.runs, [[0], [1, 2, 3, 3, 4, 5]], "one run alone, then one batch");
  const figures = host.report("m").batch!;
  assert.equal(figures.largestRows, 6);
  assert.deepEqual(figures.runsByRows, { "1": 1, "6": 1 });
  assert.equal(figures.active, true);
});

Deno.test("batch - clients in a loop are batched whole, not one alone then the rest", async () => {
  const { host, worker } = await hostWith({ max: 32, delayMs: 0 });
  worker.runMs = 200; // the window the callers have to come back in
  const clients = 8;
  // Each client sends again a little after its answer, one after another (as answers are
  // written in turn): the first is back while the others are still on their way.
  const loop = async (c: number) => {
    for (let i = 0; i < 6; i++) {
      const answer = await host.run("m", row(c));
      assert.deepEqual(firstValues(answer), [2 * c]);
      await new Promise((r) => setTimeout(r, 1 + 2 * c));
    }
  };
  await Promise.all(Array.from({ length: clients }, (_, c) => loop(c)));
  const sizes = worker.runs.map((r) => r.length);
  // Without the wait, each caller came back to an idle worker and ran alone: 8, 1, 1, 1…
  assert.deepEqual(sizes.slice(-4), [8, 8, 8, 8], `run sizes ${sizes.join(", ")}`);
});

Deno.test("batch - a caller that does not come back costs its neighbour one run time at most", async () => {
  const { host, worker } = await hostWith({ max: 32, delayMs: 0 });
  worker.runMs = 60;
  const release = hold(worker);
  const batch = [1, 2, 3, 4].map((v) => host.run("m", row(v)));
  await tick();
  release();
  await Promise.all(batch); // 4 rows answered: the next turn expects 4 for 60 ms
  let t0 = performance.now();
  await host.run("m", row(5)); // only one comes back
  const waited = performance.now() - t0;
  assert.ok(waited >= 40 && waited < 1000, `waited ${waited.toFixed(1)} ms for the other 3`);
  await new Promise((r) => setTimeout(r, 80)); // past the last run's window: idle
  t0 = performance.now();
  await host.run("m", row(6));
  const idle = performance.now() - t0;
  assert.ok(idle < 40, `an idle pipeline runs at once (${idle.toFixed(1)} ms)`);
});

Deno.test("batch - a higher priority overtakes in the pipeline's queue, FIFO within one", async () => {
  const { host, worker } = await hostWith(null);
  const release = hold(worker);
  const order: string[] = [];
  const busy = host.run("m", row(0)).then(() => order.push("busy"));
  await tick();
  const runs = [
    busy,
    host.run("m", row(1)).then(() => order.push("normal1")),
    host.run("m", row(2), { priority: "low" }).then(() => order.push("low")),
    host.run("m", row(3)).then(() => order.push("normal2")),
    host.run("m", row(4), { priority: "high" }).then(() => order.push("high")),
  ];
  await new Promise((r) => setTimeout(r, 5));
  release();
  await Promise.all(runs);
  assert.deepEqual(order, ["busy", "high", "normal1", "normal2", "low"]);
  assert.equal(host.report("m").batch, null, "batch: false shows no batching");
});

Deno.test("batch - a run queued after a move runs after it; those before run before it", async () => {
  const { host, worker } = await hostWith({ max: 32, delayMs: 0 });
  const release = hold(worker);
  const before = [host.run("m", row(1)), host.run("m", row(2))];
  const offload = host.offload("m");
  const after = host.run("m", row(3));
  await new Promise((r) => setTimeout(r, 5));
  release();
  const [a, b, c] = await Promise.all([...before, after]);
  await offload;
  assert.deepEqual([a.device, b.device, c.device], ["gpu", "gpu", "cpu"]);
  assert.deepEqual(
    worker.runs,
    [[1, 2], [3]],
    "the run after the move is not batched with those before it",
  );
});

Deno.test("batch - a batch out of GPU memory is split in halves and capped; each caller answers", async () => {
  const { host, worker, events } = await hostWith({ max: 8, delayMs: 0 });
  worker.oomAbove = 2;
  const release = hold(worker);
  const first = host.run("m", row(0));
  await tick();
  const rest = [1, 2, 3, 4, 5, 6, 7, 8].map((v) => host.run("m", row(v)));
  await new Promise((r) => setTimeout(r, 5));
  release();
  await first;
  assert.deepEqual(
    (await Promise.all(rest)).map(firstValues),
    [2, 4, 6, 8, 10, 12, 14, 16].map((v) => [v]),
  );
  assert.deepEqual(worker.runs.map((r) => r.length), [1, 8, 4, 2, 2, 4, 2, 2]);
  assert.equal(host.report("m").batch!.capRows, 2);
  const capped = events.recent().filter((e) => e.kind === "batch" && e.reason === "capped");
  assert.deepEqual(capped.map((e) => e.kind === "batch" && e.capRows).sort(), [2, 4]);
  // The cap holds for the next batches on the GPU.
  worker.runs.length = 0;
  const again = hold(worker);
  const busy = host.run("m", row(0));
  await tick();
  const more = [1, 2, 3, 4, 5].map((v) => host.run("m", row(v)));
  await new Promise((r) => setTimeout(r, 5));
  again();
  await Promise.all([busy, ...more]);
  assert.deepEqual(worker.runs.map((r) => r.length), [1, 2, 2, 1]);
});

Deno.test("batch - a single request out of memory goes back to the caller as oom (the scheduler retries)", async () => {
  const { host, worker } = await hostWith({ max: 8, delayMs: 0 });
  worker.oomAbove = 0;
  await assert.rejects(
    host.run("m", row(1)),
    (e) => e instanceof PipelineError && e.code === "oom",
  );
});

Deno.test("batch - one bad or failing request is refused alone; its neighbours get their answers", async () => {
  const { host, worker } = await hostWith({ max: 32, delayMs: 0 });
  const release = hold(worker);
  const busy = host.run("m", row(0));
  await tick();
  const wrongShape: RunInput = {
    kind: "tensors",
    tensors: { x: { type: "float32", dims: [1, 3], data: new Float32Array(3) } },
  };
  const good = [1, 2, 3].map((v) => host.run("m", row(v)));
  const poisoned = host.run("m", row(-1));
  const bad = host.run("m", wrongShape);
  await new Promise((r) => setTimeout(r, 5));
  release();
  await busy;
  assert.deepEqual((await Promise.all(good)).map(firstValues), [[2], [4], [6]]);
  await assert.rejects(poisoned, (e) => e instanceof PipelineError && e.code === "run_failed");
  // The double does not check shapes: the bad one ran alone, never joined the batch.
  await bad.catch(() => {});
  assert.ok(worker.runs.some((r) => r.length === 4), "the poisoned batch ran once together");
  assert.ok(!worker.runs.some((r) => r.length > 4), "the wrong shape never joined it");
});

Deno.test("batch - a caller that leaves before its turn never runs; one that leaves during it is answered at once", async () => {
  const { host, worker } = await hostWith({ max: 32, delayMs: 0 });
  const release = hold(worker);
  const busy = host.run("m", row(0));
  await tick();
  const gone = new AbortController();
  const leaving = new AbortController();
  const early = host.run("m", row(1), { signal: gone.signal });
  const stays = host.run("m", row(2));
  const late = host.run("m", row(3), { signal: leaving.signal });
  gone.abort(new Error("client left"));
  await assert.rejects(early, QueueAbortedError);
  await new Promise((r) => setTimeout(r, 5));
  release();
  await busy;
  // The batch [2, 3] is running now (held again); the second caller leaves.
  const again = hold(worker);
  await new Promise((r) => setTimeout(r, 5));
  leaving.abort(new Error("client left"));
  await assert.rejects(late, QueueAbortedError);
  again();
  assert.deepEqual(firstValues(await stays), [4]);
  assert.deepEqual(worker.runs, [[0], [2, 3]], "row 1 never ran");
  assert.equal(worker.dead, null);
});

Deno.test("batch - past one caller's deadline only it answers; the worker is replaced only when all have passed", async () => {
  const { host, worker } = await hostWith({ max: 32, delayMs: 0 });
  const release = hold(worker);
  const busy = host.run("m", row(0));
  await tick();
  const d1 = new AbortController(), d2 = new AbortController();
  const timeout = (n: number) => new PipelineError("timeout", `request ${n} took too long`);
  const one = host.run("m", row(1), { deadline: d1.signal });
  const two = host.run("m", row(2), { deadline: d2.signal });
  release();
  await busy;
  hold(worker);
  await new Promise((r) => setTimeout(r, 5));
  d1.abort(timeout(1));
  await assert.rejects(one, /request 1 took too long/);
  assert.equal(worker.dead, null, "one caller is still waiting for the run");
  d2.abort(timeout(2));
  await assert.rejects(two, /request 2 took too long/);
  assert.match(worker.dead ?? "", /stuck past the request timeout/);
});

// ---- the whole path on the native CPU engine -----------------------------------------------

const WIDTH = 256; // synthetic:1MiB is [N, 256] → [N, 256], MatMul + Add + Relu layers

Deno.test({
  name: "batch - 16 concurrent requests on the native engine equal one at a time, bit for bit",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = tempDirSync("headroom-batch-");
    Deno.writeTextFileSync(
      `${dir}/models.json`,
      JSON.stringify({ models: [{ id: "m", source: "synthetic:1MiB" }] }),
    );
    await using service = await startService(
      testConfig({ gpu: "cpu", cpuEngine: "native", modelsFile: `${dir}/models.json` }),
    );
    const infer = (data: number[] | Float32Array, dims = [1, WIDTH]) =>
      service.app.request("/api/v1/pipelines/m/infer", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          inputs: { input: { type: "float32", dims, data: Array.from(data) } },
        }),
      });
    const inputs = Array.from(
      { length: 16 },
      (_, r) => Float32Array.from({ length: WIDTH }, (_, i) => Math.sin(r * 31 + i) * (r + 1)),
    );
    const outputOf = async (response: Response) => {
      const body = await response.json();
      assert.equal(response.status, 200, JSON.stringify(body));
      return Object.values(body.outputs as Record<string, { data: number[] }>)[0].data;
    };
    const alone: number[][] = [];
    for (const input of inputs) alone.push(await outputOf(await infer(input)));
    assert.equal(service.host.report("m").batch!.largestRows, 1, "one at a time: batches of 1");

    const together = await Promise.all(inputs.map(async (input) => outputOf(await infer(input))));
    together.forEach((output, r) => assert.deepEqual(output, alone[r], `row ${r}`));
    const row = service.host.report("m").batch!;
    assert.ok(row.largestRows > 1, `a batch ran (${JSON.stringify(row.runsByRows)})`);

    // A bad request among them gets its 400 naming the input; the other 15 their answers.
    const mixed = await Promise.all(
      inputs.map((input, r) => r === 7 ? infer(input.subarray(1), [1, WIDTH - 1]) : infer(input)),
    );
    for (const [r, response] of mixed.entries()) {
      if (r === 7) {
        const body = await response.json();
        assert.equal(response.status, 400, JSON.stringify(body));
        assert.match(JSON.stringify(body), /\\"input\\"/);
      } else assert.deepEqual(await outputOf(response), alone[r], `row ${r}`);
    }

    const metrics = await (await service.app.request("/metrics")).text();
    assert.match(metrics, /# TYPE headroom_batch_size histogram/);
    assert.match(metrics, /headroom_batch_size_count\{model="m"[^}]*\} \d+/);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  },
});
