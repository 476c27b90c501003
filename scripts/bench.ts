/**
 * `deno task bench`: runs every benchmark, writes `bench/results.json`, and refreshes
 * the table in docs/benchmarks.md between the `bench:begin` / `bench:end` markers.
 *
 * - In-process measures: `deno bench --json` over `bench/*_bench.ts`.
 * - HTTP: wrk (Debian's `wrk`) against `GET /api/v1/hardware/vram` of a real Headroom
 *   (on the driver test double) and against a plain `Deno.serve` hello world, in the
 *   same run, reported as a ratio (these machines are noisy: only ratios compare).
 * - Serving (`--only serving`, scripts/_lib/serving.ts): inference on the generated 64 MiB
 *   model through v2 JSON, v2 binary and /api/v1 at 1-64 clients, beside the least server
 *   (bench/least_server.ts) and onnxruntime-node in process, and tensor ingestion.
 * @module
 */
import { fileURLToPath as fromFileUrl } from "node:url";
import {
  type HttpResult,
  runWrk,
  startHeadroomProcess,
  startHelloWorld,
} from "./_lib/http_bench.ts";
import { formatTable } from "./_lib/cli.ts";
import { machineDescription } from "./_lib/machine.ts";
import { defineTool, flag } from "./_lib/tool.ts";
import { writeBenchTable } from "./_lib/bench_table.ts";
import { sizeSweepRows } from "./_lib/size_sweep.ts";
import { servingRows } from "./_lib/serving.ts";

const tool = defineTool({
  name: "bench",
  usage: "deno task bench [--only NAME] [--seconds N] [--heavy] [--json]",
  about: "Runs every benchmark and writes bench/results.json and the table in docs/benchmarks.md.",
  flags: {
    only: {
      arg: "NAME",
      help: `run only benchmarks whose file or name contains NAME ("size" = the size sweep)`,
      schema: flag.text(),
    },
    seconds: {
      arg: "N",
      help: "wrk duration per HTTP target (default 10)",
      schema: flag.number(10, { min: 1 }),
    },
    heavy: { help: "add the 3 GiB model to the size sweep (about 10 GB of disk and RAM)" },
    json: { help: "print the results as JSON instead of a table" },
  },
});
const { values } = tool.parse(Deno.args);
const seconds = values.seconds;

/**
 * The same V8 flag as the start and test tasks: without it every worker keeps the CPU
 * busy re-compiling onnxruntime's 26 MB wasm, and on 2 cores that skews every figure.
 */
const V8_FLAGS = "--v8-flags=--wasm-tiering-budget=100000000";

const root = fromFileUrl(new URL("../", import.meta.url));

/** One row of the results: a named figure with its unit and how it was measured. */
interface BenchRow {
  name: string;
  value: number;
  unit: string;
  target?: string;
  note: string;
}
const rows: BenchRow[] = [];
const log = (line: string) => values.json ? console.error(line) : console.log(line);

// 1. In-process benchmarks (Deno.bench).
const files: string[] = [];
for await (const entry of Deno.readDir(`${root}bench`)) {
  if (entry.name.endsWith("_bench.ts") && (!values.only || entry.name.includes(values.only))) {
    files.push(`bench/${entry.name}`);
  }
}
files.sort();
for (const [i, file] of files.entries()) {
  log(`[${i + 1}/${files.length}] deno bench ${file}`);
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["bench", V8_FLAGS, "--allow-all", "--json", file],
    cwd: root,
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!output.success) {
    console.error(`deno bench ${file} failed (exit ${output.code})`);
    Deno.exit(1);
  }
  const report = JSON.parse(new TextDecoder().decode(output.stdout));
  for (const bench of report.benches ?? []) {
    const result = bench.results?.[0]?.ok;
    if (!result) continue;
    rows.push({
      name: bench.name,
      value: result.avg / 1000,
      unit: "µs/iter",
      note: `${file}; p75 ${(result.p75 / 1000).toFixed(2)} µs, p99 ${
        (result.p99 / 1000).toFixed(2)
      } µs`,
    });
  }
}

// 2. HTTP throughput: Headroom's VRAM endpoint over a hello world, same run, same tool.
if (!values.only || "http".includes(values.only)) {
  log(`[http] wrk ${seconds}s against hello world, then GET /api/v1/hardware/vram`);
  const hello = await startHelloWorld();
  let helloResult: HttpResult;
  try {
    helloResult = await runWrk(hello.url, seconds);
  } finally {
    await hello.stop();
  }
  const headroom = await startHeadroomProcess(root);
  let vramResult: HttpResult;
  try {
    vramResult = await runWrk(`${headroom.url}/api/v1/hardware/vram`, seconds);
  } finally {
    await headroom.stop();
  }
  rows.push({
    name: "HTTP: Deno.serve hello world",
    value: helloResult.requestsPerSecond,
    unit: "req/s",
    note: `wrk -t2 -c50 -d${seconds}s; p99 ${helloResult.p99Ms} ms`,
  });
  rows.push({
    name: "HTTP: GET /api/v1/hardware/vram",
    value: vramResult.requestsPerSecond,
    unit: "req/s",
    note: `wrk -t2 -c50 -d${seconds}s; p99 ${vramResult.p99Ms} ms; NVML test double`,
  });
  rows.push({
    name: "HTTP: /api/v1/hardware/vram over hello world",
    value: vramResult.requestsPerSecond / helloResult.requestsPerSecond,
    unit: "ratio",
    target: "≥ 0.6",
    note: "same run, same load tool",
  });
}

// 3. Dashboard in chromium: device change to screen, and JavaScript shipped.
rows.push(...decisionRateRows());
if (!values.only || "release".includes(values.only)) rows.push(...await releaseRows());
if (!values.only || "switch".includes(values.only)) rows.push(...await switchRows());
if (!values.only || "dashboard".includes(values.only)) rows.push(...await dashboardRows());

// 4. Pipelines: worker over main thread (from the Deno.bench rows above), and one-shot
//    cold load / offload / rehydrate / RSS figures of real pipeline workers.
if (!values.only || "pipelines".includes(values.only)) rows.push(...await pipelineRows());

// 5. Model size sweep: 16 MiB to 1 GiB (3 GiB with --heavy) per CPU engine, GPU legs on
//    the software adapter, each run in a fresh process (bench/big_model.ts).
if (!values.only || "size sweep".includes(values.only)) {
  rows.push(...await sizeSweepRows(root, values.heavy, log));
}

// 6. Serving: wrk at 1-64 clients on v2 JSON / binary and /api/v1 against the least server,
//    beside onnxruntime-node in process at batch 1 and 16, and tensor ingestion.
if (!values.only || "serving".includes(values.only)) {
  rows.push(...await servingRows(root, seconds, log));
}

// With --only, the other rows of the last full run are kept (their own notes say how they were measured).
if (values.only) {
  try {
    const previous = JSON.parse(await Deno.readTextFile(`${root}bench/results.json`)) as {
      rows: BenchRow[];
    };
    const fresh = new Set(rows.map((row) => row.name));
    // A bench file that ran again replaces all its rows (a renamed or removed bench goes).
    const rerun = (row: BenchRow) => files.some((file) => row.note.startsWith(`${file};`));
    rows.unshift(...previous.rows.filter((row) => !fresh.has(row.name) && !rerun(row)));
  } catch {
    // no earlier results: only this run's rows
  }
}
const results = { ranAt: new Date().toISOString(), machine: await machineDescription(), rows };
await Deno.mkdir(`${root}bench`, { recursive: true });
await tool.writeResults(`${root}bench/results.json`, results);
await writeBenchTable(`${root}docs/benchmarks.md`, results);
tool.report(results, {
  json: values.json,
  text: () =>
    formatTable(
      ["name", "value", "unit", "target"],
      rows.map((r) => [r.name, round(r.value), r.unit, r.target ?? ""]),
    ) + "\nWrote bench/results.json and the table in docs/benchmarks.md.",
});

/**
 * Runs bench/dashboard.ts (chromium against Headroom on the driver double), which writes
 * bench/dashboard.json, and turns that into rows. No rows, with a note, when it skips.
 */
async function dashboardRows(): Promise<BenchRow[]> {
  log("[dashboard] chromium: device change to screen, JavaScript bytes");
  const run = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "bench/dashboard.ts"],
    cwd: root,
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (run.code === 2) return []; // no chromium or driver double here: it said so
  if (!run.success) {
    console.error(`bench/dashboard.ts failed (exit ${run.code})`);
    Deno.exit(1);
  }
  const { latency, javascript } = JSON.parse(
    await Deno.readTextFile(`${root}bench/dashboard.json`),
  ) as import("../bench/dashboard.ts").DashboardBench;
  const how =
    `chromium; ${latency.changes} changes, NVML double sampled every ${latency.sampleMs} ms`;
  return [
    {
      name: "Dashboard: device change to screen, median",
      value: latency.medianMs,
      unit: "ms",
      note: how,
    },
    {
      name: "Dashboard: device change to screen, p95",
      value: latency.p95Ms,
      unit: "ms",
      target: `< ${latency.targetP95Ms}`,
      note: how,
    },
    {
      name: "Dashboard: JavaScript shipped (gzip)",
      value: javascript.gzipBytes,
      unit: "bytes",
      note:
        `the island bundle, its only script; ${javascript.rawBytes} B raw, ${javascript.brotliBytes} B brotli`,
    },
  ];
}

/**
 * Pipelines: the worker-over-main-thread ratio of bench/pipelines_bench.ts (its two
 * Deno.bench rows of this run), then `bench/pipelines_bench.ts --one-shot` (a fresh process)
 * for cold loads per model (fresh worker each), offload / rehydrate on the software WebGPU
 * adapter with tracked GPU bytes, and process RSS per worker for each onnxruntime-web build.
 */
async function pipelineRows(): Promise<BenchRow[]> {
  // The two Deno.bench rows of bench/pipelines_bench.ts (not imported: its top level runs the bench setup).
  const ours = rows.filter((row) => row.note.startsWith("bench/pipelines_bench.ts"));
  const main = ours.find((row) => row.name.includes("session on the main thread"));
  const worker = ours.find((row) => row.name.includes("through the worker"));
  const out: BenchRow[] = [];
  if (main && worker) {
    out.push({
      name: "pipelines - ocr-det run, worker over main thread",
      value: worker.value / main.value,
      unit: "ratio",
      target: "≤ 1.05",
      note: "same run; wasm EP, numThreads 1 on both sides; avg over avg",
    });
  }
  log("[pipelines] one-shot: cold load, offload / rehydrate, RSS per worker");
  const run = await new Deno.Command(Deno.execPath(), {
    args: ["run", V8_FLAGS, "--allow-all", "bench/pipelines_bench.ts", "--one-shot"],
    cwd: root,
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!run.success) {
    console.error(`bench/pipelines_bench.ts --one-shot failed (exit ${run.code})`);
    Deno.exit(1);
  }
  const shot = JSON.parse(
    new TextDecoder().decode(run.stdout),
  ) as import("../bench/pipelines_bench.ts").PipelinesOneShot;
  const median = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  };
  const list = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(", ");
  for (const load of shot.loads) {
    const on = `${load.model} on ${load.device}`;
    out.push({
      name: `pipelines - cold load, ${on}`,
      value: median(load.coldMs),
      unit: "ms",
      note: `median of ${load.coldMs.length} fresh workers (${list(load.coldMs)} ms): load() ` +
        `to reply, ORT import + session create; spawn+init before it ${list(load.startMs)} ms`,
    });
    if (load.rehydrateMs.length === 0 || !load.gpuBytes) continue;
    const how = `median of ${load.rehydrateMs.length} cycles in one worker, a run between`;
    out.push(
      {
        name: `pipelines - offload (GPU → CPU), ${on}`,
        value: median(load.offloadMs),
        unit: "ms",
        note: `${how} (${list(load.offloadMs)} ms); GPU bytes after: ${load.gpuBytes.offloaded}`,
      },
      {
        name: `pipelines - rehydrate (CPU → GPU), ${on}`,
        value: median(load.rehydrateMs),
        unit: "ms",
        note: `${how} (${list(load.rehydrateMs)} ms)`,
      },
      {
        name: `pipelines - rehydrate over cold load, ${on}`,
        value: median(load.rehydrateMs) / median(load.coldMs),
        unit: "ratio",
        note: "medians, same run",
      },
      {
        name: `pipelines - tracked GPU bytes, ${on}`,
        value: load.gpuBytes.loaded,
        unit: "bytes",
        note:
          `after load; after a run ${load.gpuBytes.ran}, after rehydrate ${load.gpuBytes.rehydrated}, peak ${load.gpuPeakBytes}`,
      },
    );
  }
  const MB = 2 ** 20;
  for (const r of shot.rss) {
    const how = `Deno.memoryUsage().rss delta, one worker alone (${r.model} on ${r.device})`;
    out.push(
      {
        name: `pipelines - RSS per worker, ${r.build} build, idle`,
        value: (r.idleBytes - r.beforeBytes) / MB,
        unit: "MB",
        note: `${how}: spawned + init, no session`,
      },
      {
        name: `pipelines - RSS per worker, ${r.build} build, loaded`,
        value: (r.loadedBytes - r.beforeBytes) / MB,
        unit: "MB",
        note: `${how}; after terminate still +${
          ((r.afterTerminateBytes - r.beforeBytes) / MB)
            .toFixed(0)
        } MB`,
      },
    );
  }
  return out;
}

function round(value: number): number {
  return value >= 100 ? Math.round(value) : Number(value.toPrecision(3));
}

/**
 * Decisions per second of the scheduler's check([id]) at each pipeline count, from this
 * run's bench/placement_bench.ts rows (target at 1,000: ≥ 100,000/s), and the spread
 * between 10 and 10,000 pipelines (flat is the point).
 */
function decisionRateRows(): BenchRow[] {
  const out: BenchRow[] = [];
  const pattern = /^scheduler - check\(\[id\]\) at ([\d,]+) pipelines/;
  const rates = new Map<string, number>();
  for (const row of rows) {
    const match = pattern.exec(row.name);
    if (!match) continue;
    const rate = 1e6 / row.value;
    rates.set(match[1], rate);
    out.push({
      name: `scheduler - decisions/s, check([id]) at ${match[1]} pipelines`,
      value: Math.round(rate),
      unit: "decisions/s",
      target: match[1] === "1,000" ? "≥ 100,000" : undefined,
      note: `1 / the average of "scheduler - check([id]) at ${
        match[1]
      } pipelines"; production path`,
    });
  }
  const low = rates.get("10");
  const high = rates.get("10,000");
  if (low && high) {
    out.push({
      name: "scheduler - check([id]) rate, 10,000 over 10 pipelines",
      value: Number((high / low).toFixed(3)),
      unit: "ratio",
      target: "≥ 0.5",
      note: "same run; does not grow with the number of pipelines",
    });
  }
  return out;
}

/**
 * Runs `bench/NAME.ts`, which writes its figures to `bench/NAME.json`, and reads them back.
 * A script that fails ends the run (exit 1), as the other benches do: its old figures would
 * otherwise stay in the table as if measured again.
 */
async function benchReport<T>(name: string): Promise<T> {
  const run = await new Deno.Command(Deno.execPath(), {
    args: ["run", V8_FLAGS, "--allow-all", `bench/${name}.ts`],
    cwd: root,
    stdout: "null",
    stderr: "inherit",
  }).output();
  if (!run.success) {
    console.error(`bench/${name}.ts failed (exit ${run.code})`);
    Deno.exit(1);
  }
  return JSON.parse(await Deno.readTextFile(`${root}bench/${name}.json`)) as T;
}

/**
 * Runs bench/ab_switch.ts (exclusive mode, 200 alternating requests to two models that
 * cannot both be loaded, first come first served against the exclusive line) and turns it
 * into rows: switches and time to the last answer, on the simulated GPU and on the service.
 */
async function switchRows(): Promise<BenchRow[]> {
  log("[switch] exclusive mode A/B: HEADROOM_MAX_WAIT=0 against the default 2 s");
  const report = await benchReport<import("../bench/ab_switch.ts").SwitchBench>("ab_switch");
  return report.runs.flatMap((r) => {
    const limit = r.maxWaitMs === 0 ? "max wait 0 (FIFO)" : `max wait ${r.maxWaitMs / 1000} s`;
    const where = r.leg === "sim"
      ? `simulated GPU, fake clock: load ${report.sim.loadMs} ms, run ${report.sim.runMs} ms`
      : `in-process service, --gpu cpu, 2 × synthetic:${report.service.size} (${report.service.engine}); wall time`;
    const name = `switch - A/B ×${r.requests}, ${r.leg}, ${limit}`;
    return [
      { name: `${name}: switches`, value: r.switches, unit: "switches", note: where },
      {
        name: `${name}: last answer`,
        value: r.totalMs,
        unit: "ms",
        note: `${where}; longest wait ${r.maxWaitedMs} ms`,
      },
    ];
  });
}

/** Runs bench/release_confirm.ts (offload → release confirmed on the driver double) and turns it into rows. */
async function releaseRows(): Promise<BenchRow[]> {
  log("[release] offload → release confirmed on the driver double");
  const report = await benchReport<import("../bench/release_confirm.ts").ReleaseConfirmBench>(
    "release_confirm",
  );
  return report.results.map((r) => ({
    name: r.freeDelayMs === 0
      ? "scheduler - offload → release confirmed, driver double shows frees at once"
      : `scheduler - offload → release confirmed, driver double shows frees ${r.freeDelayMs} ms late`,
    value: Number(r.medianMs.toFixed(1)),
    unit: "ms",
    note: `median of ${report.cycles} (p95 ${
      r.p95Ms.toFixed(1)
    } ms), ${r.confirmed}/${report.cycles} confirmed; 64 MiB; driver checked every ${report.pollMs} ms`,
  }));
}
