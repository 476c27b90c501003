/**
 * The Reliability table (docs/reliability.md), rendered from what the tests measured: each fault and
 * load test writes its figures to `tests/artifacts/<name>.json` (tests/fixtures/
 * artifact.ts), and each row here says which artifacts it reads and how it words them.
 * `deno task figures` (scripts/figures.ts) writes it between docs/reliability.md's
 * `<!-- reliability:begin -->` and `<!-- reliability:end -->` markers, as the bench table
 * is written, so no "last run" figure is copied by hand.
 * @module
 */

/** One artifact as a test wrote it: its name, when (`at`), and its figures. */
// deno-lint-ignore no-explicit-any
export type Artifact = { name?: string; at?: string; ranAt?: string } & Record<string, any>;

/** Artifacts by name (the file name without `.json`). */
export type Artifacts = Record<string, Artifact>;

/** One row: the promise, the tests that prove it, and its last-run figures. */
export interface ReliabilityRow {
  promise: string;
  provedBy: string;
  /** The artifacts `lastRun` reads; the table is not written while one is missing. */
  artifacts: string[];
  lastRun(a: Artifacts): string;
}

const n = (value: number): string => Math.round(value).toLocaleString("en-US");
const kb = (bytes: number): string => `${n(bytes / 1000)} KB`;

/** The rows, in table order. */
export const RELIABILITY_ROWS: ReliabilityRow[] = [
  {
    promise:
      "Malformed requests never crash it or get a 5xx: bad JSON, wrong types, huge numbers, deep nesting, unknown ids, `../` and `%2e%2e`, NUL bytes, wrong methods, oversize bodies, wrong content types, against every route; every answer is a JSON error (two 500s it found were fixed: a GET without an Upgrade header on the WebSocket route, and a 10,000-deep payload)",
    provedBy: "`tests/fuzz_test.ts`",
    artifacts: ["fuzz"],
    lastRun: ({ fuzz }) =>
      `${
        n(fuzz.requestsSent)
      } requests, ${fuzz.errors5xx} 5xx, ${fuzz.crashes} crashes, ${fuzz.hangs} hangs`,
  },
  {
    promise:
      "A worker that dies mid-request (killed, or its plugin crashes) fails that request with 503 and a message; the next request starts a fresh worker; other pipelines are untouched",
    provedBy: "`tests/faults_test.ts`, `tests/pipelines_api_test.ts`",
    artifacts: ["faults_worker_crash"],
    lastRun: ({ faults_worker_crash: f }) =>
      `${f.faultsInjected} faults injected, ${f.errors503} requests answered 503 as designed, ` +
      `${f.unexpectedErrors} other errors, bystander ${
        f.bystanderChanged ? "changed" : "unchanged"
      }`,
  },
  {
    promise:
      "A GPU lost for 5 s reads `lost` with the NVML error, health `degraded`, the service keeps answering, and it recovers by itself",
    provedBy: "`tests/faults_test.ts`, `tests/http_test.ts`",
    artifacts: ["faults_gpu_lost"],
    lastRun: ({ faults_gpu_lost: f }) =>
      `${n(f.requestsSent)} requests during the fault, ${f.errors5xx} 5xx, back to \`ok\` ` +
      `${n(f.recoveryMs)} ms after the driver answered`,
  },
  {
    promise:
      "cudaMalloc failures, a driver without `nvmlDeviceGetMemoryInfo_v2`, a flaky NVML call: typed errors, the v1 fallback, recovery",
    provedBy: "`tests/faults_test.ts`, `tests/ffi_nvml_test.ts`",
    artifacts: ["faults_cuda_malloc", "faults_nvml_flaky"],
    lastRun: ({ faults_cuda_malloc: cuda, faults_nvml_flaky: nvml }) =>
      `${cuda.faultsInjected} + ${nvml.faultsInjected} faults injected, ${cuda.crashes} crashes, ` +
      `${nvml.unhandledRejections} unhandled rejections`,
  },
  {
    promise: "A profile KV acknowledged is never lost, even to `kill -9` mid-write",
    provedBy: "`tests/kv_crash_test.ts`",
    artifacts: ["kv_crash"],
    lastRun: ({ kv_crash: k }) =>
      `${k.killsSent} kills, ${n(k.acknowledged)} writes acknowledged, ${n(k.found)} found, ` +
      `${k.lost} lost`,
  },
  {
    promise:
      "200 concurrent inference requests over a budget for a third of the models: all answered (200 or 429), no out-of-memory, memory under budget afterwards",
    provedBy: "`tests/overload_test.ts`",
    artifacts: ["overload"],
    lastRun: ({ overload: o }) =>
      `${o.statuses["200"] ?? 0} × 200, ${o.statuses["429"] ?? 0} × 429, ${o.errors5xx} 5xx, ` +
      `${o.oomEvents} OOM; tracked ${kb(o.finalTrackedBytes)} of a ${
        kb(o.budgetBytes)
      } budget after`,
  },
  {
    promise:
      "10 concurrent clients doing mixed operations (infer, load, offload, switch, check) on real workers and a small budget: no errors but the documented ones, the budget holds, nothing hangs",
    provedBy: "`tests/concurrency_test.ts` (10 × 65; `HEADROOM_HEAVY=1` for 10 × 650)",
    artifacts: ["concurrency"],
    lastRun: ({ concurrency: c }) =>
      `${c.clients} × ${c.opsPerClient}: ${n(c.operations)} ops in ${n(c.seconds)} s, ` +
      `${c.errors} errors, ${c.evictions} evictions, peak ${kb(c.maxTrackedBytes)} tracked of a ` +
      `${kb(c.budgetBytes)} budget, ${c.violations} violations`,
  },
  {
    promise:
      "GPU bytes + headroom ≤ budget after every step of random operation sequences, active pipelines never evicted, every decision has a reason — on the model host and on the real PipelineManager (worker doubles)",
    provedBy: "`tests/scheduler_test.ts` (200 seeds × 100 steps, each host)",
    artifacts: ["scheduler_property_model", "scheduler_property_manager"],
    lastRun: ({ scheduler_property_model: m, scheduler_property_manager: p }) =>
      `${m.sequences} + ${p.sequences} sequences, ${m.violations + p.violations} violations; ` +
      `${n(m.evictions)} and ${n(p.evictions)} evictions exercised`,
  },
  {
    promise:
      'SIGINT/SIGTERM: live SSE and WebSocket streams are closed at once (the page shows "Server stopped"), no new connections, in-flight requests finish (10 s deadline), every worker ends, KV closes; a second signal exits at once',
    provedBy: "`main.ts`; `tests/e2e_server_test.ts`, `tests/browser/narrow_and_stop_test.ts`",
    artifacts: ["sigterm"],
    lastRun: ({ sigterm }) =>
      `${n(sigterm.exitMs)} ms from SIGTERM to exit with an SSE stream and a WebSocket open`,
  },
  {
    promise:
      "One contract for every worker host: the model host, the PipelineManager over worker doubles, and over real workers",
    provedBy:
      "`tests/host_contract_test.ts` (6 cases on 3 hosts; the GPU case on the two without real workers)",
    artifacts: [],
    lastRun: () => "",
  },
  {
    promise:
      "A switch or test load fired while the other runs, with inference at other models meanwhile: each figure is of one model alone, nothing is undone; a switch that cannot fit unloads nothing; a failed switch puts the previous models back",
    provedBy: "`tests/sections_test.ts`",
    artifacts: ["sections_switch"],
    lastRun: ({ sections_switch: s }) =>
      `the switch's figures were its own model's (${s.vramMb} MB VRAM, ${s.ramMb} MB RAM) with ` +
      `${s.requestsMeanwhile} requests fired meanwhile`,
  },
  {
    promise:
      "A 19 MiB shortfall with the driver showing frees 40 ms late evicts one model, not all three; NVML_ERROR_UNKNOWN with pipelines loaded moves nothing",
    provedBy: "`tests/releases_test.ts`, `tests/device_errors_test.ts` (driver double)",
    artifacts: ["releases_late_free", "device_errors_unknown"],
    lastRun: ({ releases_late_free: r, device_errors_unknown: d }) =>
      `${r.evictions} eviction(s) over ${r.headroomPasses} headroom passes; ${d.moves} moves ` +
      `over ${d.samples} samples under UNKNOWN`,
  },
];

/** The artifacts the rows read that `artifacts` lacks. */
export function artifactsMissing(artifacts: Artifacts, rows = RELIABILITY_ROWS): string[] {
  return [...new Set(rows.flatMap((row) => row.artifacts))].filter((name) => !(name in artifacts));
}

/** The table's lines (a sentence naming when the figures were taken, then the table). */
export function renderReliability(artifacts: Artifacts, rows = RELIABILITY_ROWS): string[] {
  const missing = artifactsMissing(artifacts, rows);
  if (missing.length > 0) {
    throw new Error(
      `No test artifact for ${missing.map((m) => `"${m}"`).join(", ")} in tests/artifacts/: ` +
        "run the suite (`deno task test`, with a WebGPU adapter) first, then `deno task figures`",
    );
  }
  const used = rows.flatMap((row) => row.artifacts.map((name) => artifacts[name]));
  const times = used.map((a) => a.at ?? a.ranAt).filter((t): t is string => !!t).sort();
  const when = (t: string) => t.slice(0, 16).replace("T", " ");
  const span = times.length === 0
    ? ""
    : ` taken ${when(times[0])}${times.length > 1 ? ` to ${when(times.at(-1)!)}` : ""} UTC`;
  const machines = [...new Set(used.map((a) => a.machine).filter(Boolean))];
  const loads = used.map((a) => a.loadAverage).filter((l): l is number => typeof l === "number");
  const where = machines.length === 0 ? "" : ` on ${machines.join("; ")}`;
  const load = loads.length === 0
    ? ""
    : ` (1-minute load average ${Math.min(...loads).toFixed(1)}–${
      Math.max(...loads).toFixed(1)
    } while they ran)`;
  const cell = (text: string) => text.replaceAll("|", "\\|").replaceAll("\n", " ");
  return [
    `Written by \`deno task figures\` from the test artifacts (\`tests/artifacts/\`)${span}${where}${load}.`,
    "",
    "| promise | proved by | last run |",
    "| --- | --- | --- |",
    ...rows.map((row) =>
      `| ${cell(row.promise)} | ${cell(row.provedBy)} | ${cell(row.lastRun(artifacts))} |`
    ),
  ];
}

/** Reads every `*.json` in `dir` as an artifact, by file name. */
export async function readArtifacts(dir: string): Promise<Artifacts> {
  const artifacts: Artifacts = {};
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (!entry.isFile || !entry.name.endsWith(".json")) continue;
      const path = `${dir.replace(/\/$/, "")}/${entry.name}`;
      artifacts[entry.name.slice(0, -5)] = JSON.parse(await Deno.readTextFile(path));
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return artifacts;
}
