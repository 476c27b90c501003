/**
 * `deno task stress --clients N --ops M`: N concurrent clients, M mixed operations each
 * (infer, load, offload, check, switch), against an in-process Headroom (generated
 * models, a small VRAM budget, the software WebGPU adapter) or a running one (`--url`).
 * Prints throughput, latency percentiles per operation, errors by kind, and invariant
 * violations found by polling `GET /api/v1/hardware/vram` during the run:
 *
 * - budget: the pipelines' tracked GPU bytes + the scheduler's headroom never exceed its
 *   budget, unless an `oom` event appeared;
 * - unanswered: every request (and every poll) gets an HTTP answer within `--timeout`.
 *
 * Exit status: 0 clean, 1 any 5xx answer or invariant violation (or the set-up failed),
 * 2 bad flag.
 * @module
 */
import { ConfigError } from "../core/config.ts";
import { headroomConfig, serveHeadroom } from "../server/serve_headroom.ts";
import type { ModelRow, VramReport } from "../core/types.ts";
import { formatBytes, parseBytes } from "../core/units.ts";
import { type ApiResult, callApi } from "../api_client/mod.ts";
import { EventCollector } from "./_lib/event_collector.ts";
import { formatTable, ms, sleep, UsageError } from "./_lib/cli.ts";
import { defineTool, flag } from "./_lib/tool.ts";
import {
  DEFAULT_MIX,
  type LatencySummary,
  type Mix,
  OP_KINDS,
  type OpKind,
  parseMix,
  pickOp,
  seededRandom,
  summarize,
} from "./_lib/stats.ts";

const TOOL = "stress";

/** The in-process server's VRAM budget when --budget is not given. */
const DEFAULT_BUDGET = "1MiB";

/** The in-process server's catalog when no --models file is given. */
const GENERATED_MODELS = [
  { id: "gen-64k", source: "synthetic:64KiB" },
  { id: "gen-128k", source: "synthetic:128KiB" },
  { id: "gen-192k", source: "synthetic:192KiB" },
  { id: "gen-256k", source: "synthetic:256KiB" },
];

const tool = defineTool({
  name: TOOL,
  usage: `deno task stress [--clients N] [--ops M] [--url URL] [--models FILE]
                         [--mix infer=60,load=10,offload=10,check=15,switch=5] [--budget SIZE] [--json]`,
  about: `Runs N concurrent clients, M mixed operations each, against Headroom, and reports
throughput, latency percentiles per operation, errors by kind and invariant violations.`,
  flags: {
    clients: {
      arg: "N",
      help: "concurrent clients (default 4)",
      schema: flag.number(4, { min: 1, max: 1000, integer: true }),
    },
    ops: {
      arg: "M",
      help: "operations per client (default 50)",
      schema: flag.number(50, { min: 1, max: 1e6, integer: true }),
    },
    mix: {
      arg: "SPEC",
      help: `operation weights (default ${DEFAULT_MIX}); kinds left out weigh 0:
  infer    POST /api/v1/pipelines/{id}/infer with random tensors
  load     POST /api/v1/models/{id}/load (default device)
  offload  POST /api/v1/models/{id}/offload
  check    POST /api/v1/hardware/vram/check with 1-3 models
  switch   POST /v1/models/switch`,
      schema: flag.custom((text) => {
        try {
          return parseMix(text ?? DEFAULT_MIX);
        } catch (error) {
          throw new UsageError("--mix", (error as Error).message);
        }
      }),
    },
    url: {
      arg: "URL",
      help: "a running Headroom (default: start one in this process)",
      schema: flag.url(),
    },
    token: { arg: "TOKEN", help: "API token for --url (mutating endpoints)", schema: flag.text() },
    models: {
      arg: "FILE",
      help: `models file: the in-process server's catalog (default: 4 generated models,
64-256 KiB); with --url, only the ids it lists are exercised`,
      schema: flag.custom((text) => {
        if (text === undefined) return null;
        try {
          Deno.statSync(text);
        } catch (error) {
          throw new UsageError("--models", `${text}: ${(error as Error).message}`);
        }
        return text;
      }),
    },
    budget: {
      arg: "SIZE",
      help: `in-process VRAM budget (default ${DEFAULT_BUDGET}; headroom is a tenth of it)`,
      schema: flag.custom((text) => text === undefined ? null : readBudget(text)),
    },
    gpu: {
      arg: "MODE",
      help: "in-process GPU mode: software | webgpu | cpu | auto | nvidia (default software)",
      schema: flag.oneOf(["auto", "nvidia", "webgpu", "software", "cpu"] as const, null),
    },
    timeout: {
      arg: "S",
      help: "seconds before a request counts as unanswered (default 30)",
      schema: flag.number(30, { min: 0.1, max: 3600 }),
    },
    "poll-ms": {
      arg: "MS",
      help: "invariant poll interval (default 100)",
      schema: flag.number(100, { min: 10, max: 60_000 }),
    },
    seed: {
      arg: "N",
      help: "random seed for the operation sequence (default: random, printed)",
      schema: flag.number(Math.floor(Math.random() * 2 ** 31), {
        min: 0,
        max: 2 ** 32 - 1,
        integer: true,
      }),
    },
    json: { help: "print the result as JSON on stdout (no table)" },
  },
  notes: `JSON fields: tool, target {mode, url, gpu, budgetBytes, source, models}, clients,
opsPerClient, mix, seed, durationMs, totalOps, opsPerSecond, ops {kind: {count, ok,
status4xx, status5xx, noAnswer, latencyMs {p50, p95, p99, max, mean}}}, overall (same),
errors [{op, status, code, count, message}], status5xx, invariants {polls, budgetChecks,
oomSeen, violations [{kind, at, message}]}, events {counts, missed}, ok.
Latencies are null when an operation kind never ran.

Exit status: 0 clean, 1 any 5xx or invariant violation (or set-up failed), 2 bad flag.`,
});

/** One invariant violation. */
interface Violation {
  kind: "budget" | "unanswered";
  /** Milliseconds since the epoch. */
  at: number;
  message: string;
}

/** Counts and latencies of one operation kind (or all). */
interface OpStats {
  count: number;
  ok: number;
  status4xx: number;
  status5xx: number;
  /** Timeouts and network errors: no HTTP answer at all. */
  noAnswer: number;
  latencyMs: LatencySummary;
}

/** The machine-readable result (`--json`). */
interface StressResult {
  tool: "stress";
  target: {
    mode: "in-process" | "url";
    url: string;
    gpu: string | null;
    budgetBytes: number | null;
    source: string;
    models: string[];
  };
  clients: number;
  opsPerClient: number;
  mix: Mix;
  seed: number;
  durationMs: number;
  totalOps: number;
  opsPerSecond: number;
  ops: Partial<Record<OpKind, OpStats>>;
  overall: OpStats;
  errors: Array<{ op: OpKind; status: number; code: string; count: number; message: string }>;
  status5xx: number;
  invariants: {
    polls: number;
    budgetChecks: number;
    oomSeen: boolean;
    violations: Violation[];
  };
  events: { counts: Record<string, number>; missed: boolean };
  ok: boolean;
}

/** A budget flag's value: its text (passed on to the server) and bytes. */
function readBudget(text: string): { text: string; bytes: number } {
  const bytes = parseBytes(text);
  if (bytes === null || bytes <= 0) {
    throw new UsageError("--budget", `${JSON.stringify(text)}: expected a size like 1MiB`);
  }
  return { text, bytes };
}

function readFlags(args: string[]) {
  return tool.parse(args, (values) => {
    if (values.url && (values.budget !== null || values.gpu !== null)) {
      throw new UsageError(
        values.budget !== null ? "--budget" : "--gpu",
        "only for the in-process server; a server at --url has its own",
      );
    }
    const budget = values.budget ?? readBudget(DEFAULT_BUDGET);
    return {
      clients: values.clients,
      ops: values.ops,
      url: values.url,
      token: values.token ?? null,
      models: values.models,
      mix: values.mix,
      budgetBytes: budget.bytes,
      budgetText: budget.text,
      gpu: values.gpu ?? "software",
      timeoutMs: values.timeout * 1000,
      pollMs: values["poll-ms"],
      seed: values.seed,
      json: values.json,
    };
  }).values;
}

type Flags = ReturnType<typeof readFlags>;

/** A server to stress: its base URL and how to let it go. */
interface Target {
  url: string;
  mode: "in-process" | "url";
  close(): Promise<void>;
}

async function startInProcess(flags: Flags): Promise<Target> {
  const args = [
    ...(flags.models ? [`--models=${flags.models}`] : []),
    `--gpu=${flags.gpu}`,
    `--vram-budget=${flags.budgetText}`,
    // A tenth of the budget: the headroom is used as given, and the default (1.5 GiB)
    // is above these small budgets.
    `--headroom=${Math.floor(flags.budgetBytes / 10)}`,
    "--sample-ms=100",
  ];
  try {
    headroomConfig({ args }); // a bad value is a bad flag (exit 2), not a failed start
  } catch (error) {
    if (error instanceof ConfigError) {
      tool.fail(error.problems.join("; ").replaceAll("--vram-budget", "--budget"));
    }
    throw error;
  }
  const headroom = await serveHeadroom({
    args,
    models: flags.models ? undefined : GENERATED_MODELS,
    tempPrefix: "headroom-stress-",
  });
  return { url: headroom.url, mode: "in-process", close: headroom.close };
}

/** One tensor input as the infer route takes it, built once per model. */
type InferInputs = Record<string, { type: string; dims: number[]; data: number[] }>;

/** Builds random inputs from a model's reported inputs; null when a shape is not known. */
function inputsFor(model: ModelRow, random: () => number): InferInputs | null {
  if (model.inputs.length === 0) return null;
  const inputs: InferInputs = {};
  for (const input of model.inputs) {
    const type = input.type ?? "float32";
    const dims = input.dims.map((d, i) => typeof d === "number" && d > 0 ? d : (i === 0 ? 1 : NaN));
    if (dims.some((d) => !Number.isFinite(d))) return null;
    const size = dims.reduce((a, b) => a * b, 1);
    if (size > 1 << 20) return null;
    const float = type.startsWith("float");
    const data = Array.from({ length: size }, () => float ? random() * 2 - 1 : 0);
    inputs[input.name] = { type, dims, data };
  }
  return inputs;
}

/** Learns the models: their ids, and tensor inputs for those that take tensors. */
async function discoverModels(
  flags: Flags,
  url: string,
  log: (line: string) => void,
): Promise<{ ids: string[]; inputs: Map<string, InferInputs> }> {
  const listed = await callApi<{ models: ModelRow[] }>(url, "/api/v1/models", {
    token: flags.token,
    timeoutMs: flags.timeoutMs,
  });
  if (listed.status !== 200 || !listed.body) {
    throw new Error(`GET ${url}/api/v1/models: ${listed.status || listed.errorCode}`);
  }
  let models = listed.body.models;
  if (flags.url && flags.models) {
    const wanted = new Set(
      (JSON.parse(Deno.readTextFileSync(flags.models)).models as Array<{ id: string }>).map((m) =>
        m.id
      ),
    );
    models = models.filter((m) => wanted.has(m.id));
  }
  if (models.length === 0) throw new Error("no models to exercise");
  const random = seededRandom(flags.seed ^ 0x5eed);
  const inputs = new Map<string, InferInputs>();
  if (flags.mix.infer > 0) {
    for (const model of models.filter((m) => !m.plugin)) {
      let report = model;
      if (report.inputs.length === 0) {
        // Shapes are known once a session exists: load it (on the CPU) to learn them.
        const loaded = await callApi<ModelRow>(url, `/api/v1/models/${model.id}/load`, {
          method: "POST",
          body: { device: "cpu" },
          token: flags.token,
          timeoutMs: flags.timeoutMs,
        });
        if (loaded.status !== 200 || !loaded.body) {
          log(`${model.id}: left out of infer (loading it to learn its inputs: ${loaded.status})`);
          continue;
        }
        report = loaded.body;
      }
      const built = inputsFor(report, random);
      if (built) inputs.set(model.id, built);
      else log(`${model.id}: left out of infer (its input shapes are not fixed)`);
    }
  }
  return { ids: models.map((m) => m.id), inputs };
}

/** Polls the service during the run, checking the invariants. */
function watchInvariants(flags: Flags, url: string, collector: EventCollector) {
  const stop = new AbortController();
  const state = {
    polls: 0,
    budgetChecks: 0,
    oomSeen: false,
    violations: [] as Violation[],
    source: "unknown",
  };
  const checkReport = (report: VramReport) => {
    collector.add(report);
    state.source = report.source;
    if (collector.events().some((e) => e.kind === "oom")) state.oomSeen = true;
    const scheduler = report.scheduler;
    if (!scheduler || report.source === "none") return;
    state.budgetChecks++;
    const onGpu = (report.models ?? []).reduce((sum, p) => sum + p.gpuBytes, 0);
    if (onGpu + scheduler.headroomBytes > scheduler.budgetBytes && !state.oomSeen) {
      const detail = (report.models ?? []).filter((p) => p.gpuBytes > 0)
        .map((p) => `${p.id} ${p.state} ${formatBytes(p.gpuBytes)}`).join(", ");
      state.violations.push({
        kind: "budget",
        at: report.takenAt,
        message: `pipelines hold ${onGpu} B on the GPU + headroom ${scheduler.headroomBytes} B > ` +
          `budget ${scheduler.budgetBytes} B, with no oom event (${detail})`,
      });
    }
  };
  const poll = async () => {
    const result = await callApi<VramReport>(url, "/api/v1/hardware/vram", {
      token: flags.token,
      timeoutMs: flags.timeoutMs,
    });
    state.polls++;
    if (result.status === 0) {
      state.violations.push({
        kind: "unanswered",
        at: Date.now(),
        message: `GET /api/v1/hardware/vram: ${result.errorCode} after ${Math.round(result.ms)} ms`,
      });
    } else if (result.status === 200 && result.body) checkReport(result.body);
  };
  const done = (async () => {
    while (!stop.signal.aborted) {
      await poll();
      await sleep(flags.pollMs, stop.signal);
    }
    await poll(); // one last look after the clients are done
  })();
  return {
    state,
    async stop() {
      stop.abort();
      await done;
    },
  };
}

/** One finished operation. */
interface OpRecord {
  op: OpKind;
  result: ApiResult;
}

function requestFor(
  op: OpKind,
  ids: string[],
  inputs: Map<string, InferInputs>,
  random: () => number,
): { method: string; path: string; body?: unknown } {
  const any = <T>(list: T[]) => list[Math.floor(random() * list.length)];
  switch (op) {
    case "infer": {
      const id = any([...inputs.keys()]);
      return {
        method: "POST",
        path: `/api/v1/pipelines/${id}/infer`,
        body: { inputs: inputs.get(id) },
      };
    }
    case "load":
      return { method: "POST", path: `/api/v1/models/${any(ids)}/load`, body: {} };
    case "offload":
      return { method: "POST", path: `/api/v1/models/${any(ids)}/offload` };
    case "check": {
      const count = 1 + Math.floor(random() * Math.min(3, ids.length));
      const chosen = [...ids].sort(() => random() - 0.5).slice(0, count);
      return { method: "POST", path: "/api/v1/hardware/vram/check", body: { pipelines: chosen } };
    }
    case "switch":
      return { method: "POST", path: "/v1/models/switch", body: { model: any(ids) } };
  }
}

function statsOf(records: OpRecord[]): OpStats {
  return {
    count: records.length,
    ok: records.filter((r) => r.result.status >= 200 && r.result.status < 300).length,
    status4xx: records.filter((r) => r.result.status >= 400 && r.result.status < 500).length,
    status5xx: records.filter((r) => r.result.status >= 500).length,
    noAnswer: records.filter((r) => r.result.status === 0).length,
    latencyMs: summarize(records.filter((r) => r.result.status !== 0).map((r) => r.result.ms)),
  };
}

async function main(): Promise<number> {
  const flags = readFlags(Deno.args);
  const log = (line: string) => console.error(line);

  let target: Target;
  try {
    target = flags.url
      ? { url: flags.url, mode: "url", close: () => Promise.resolve() }
      : await startInProcess(flags);
  } catch (error) {
    log(`${TOOL}: cannot start the in-process server: ${(error as Error).message}`);
    return 1;
  }
  try {
    return await run(flags, target, log);
  } catch (error) {
    log(`${TOOL}: ${(error as Error).message}`);
    return 1;
  } finally {
    await target.close();
  }
}

async function run(flags: Flags, target: Target, log: (line: string) => void): Promise<number> {
  const first = await callApi<VramReport>(target.url, "/api/v1/hardware/vram", {
    token: flags.token,
    timeoutMs: flags.timeoutMs,
  });
  if (first.status !== 200 || !first.body) {
    throw new Error(
      `GET ${target.url}/api/v1/hardware/vram: ${first.status || first.errorCode} ${
        first.errorMessage ?? ""
      }`,
    );
  }
  const { ids, inputs } = await discoverModels(flags, target.url, log);
  const mix = { ...flags.mix };
  if (mix.infer > 0 && inputs.size === 0) {
    log("No model takes plain tensors: infer is left out of the mix.");
    mix.infer = 0;
    if (OP_KINDS.every((k) => mix[k] === 0)) throw new Error("nothing left to run in --mix");
  }
  if (!flags.json) {
    log(
      `Stressing ${
        target.mode === "url" ? target.url : `an in-process Headroom (${target.url}, ` +
          `--gpu ${flags.gpu}, budget ${formatBytes(flags.budgetBytes)})`
      } with ${flags.clients} ` +
        `clients × ${flags.ops} ops over ${ids.length} models, seed ${flags.seed}`,
    );
  }

  const collector = new EventCollector(EventCollector.newestSeq(first.body));
  const watcher = watchInvariants(flags, target.url, collector);
  const total = flags.clients * flags.ops;
  const bar = tool.progress("stress", total, { enabled: !flags.json });
  const records: OpRecord[] = [];
  let fivexx = 0;
  let failures = 0;
  const started = performance.now();
  const client = async (index: number) => {
    const random = seededRandom(flags.seed + index * 7919);
    for (let i = 0; i < flags.ops; i++) {
      const op = pickOp(mix, random);
      const request = requestFor(op, ids, inputs, random);
      const result = await callApi(target.url, request.path, {
        method: request.method,
        body: request.body,
        token: flags.token,
        timeoutMs: flags.timeoutMs,
      });
      records.push({ op, result });
      if (result.status >= 500) fivexx++;
      if (result.status === 0 || result.status >= 400) failures++;
      if (result.status === 0) {
        watcher.state.violations.push({
          kind: "unanswered",
          at: Date.now(),
          message: `${request.method} ${request.path}: ${result.errorCode} after ${
            Math.round(result.ms)
          } ms (${result.errorMessage})`,
        });
      }
      bar.update(records.length, `${failures} errors, ${fivexx} 5xx`);
    }
  };
  await Promise.all(Array.from({ length: flags.clients }, (_, i) => client(i)));
  const durationMs = performance.now() - started;
  bar.stop();
  await watcher.stop();

  const ops: Partial<Record<OpKind, OpStats>> = {};
  for (const kind of OP_KINDS) {
    const mine = records.filter((r) => r.op === kind);
    if (mine.length > 0) ops[kind] = statsOf(mine);
  }
  const errorMap = new Map<string, StressResult["errors"][number]>();
  for (const { op, result } of records) {
    if (result.status >= 200 && result.status < 400) continue;
    const code = result.errorCode ?? "unknown";
    const key = `${op} ${result.status} ${code}`;
    const entry = errorMap.get(key);
    if (entry) entry.count++;
    else {
      errorMap.set(key, {
        op,
        status: result.status,
        code,
        count: 1,
        message: (result.errorMessage ?? "").slice(0, 200),
      });
    }
  }
  const errors = [...errorMap.values()].sort((a, b) => b.count - a.count);
  const violations = watcher.state.violations;
  const result: StressResult = {
    tool: "stress",
    target: {
      mode: target.mode,
      url: target.url,
      gpu: target.mode === "in-process" ? flags.gpu : null,
      budgetBytes: first.body.scheduler?.budgetBytes ?? null,
      source: first.body.source,
      models: ids,
    },
    clients: flags.clients,
    opsPerClient: flags.ops,
    mix,
    seed: flags.seed,
    durationMs: Math.round(durationMs),
    totalOps: records.length,
    opsPerSecond: Math.round((records.length / (durationMs / 1000)) * 10) / 10,
    ops,
    overall: statsOf(records),
    errors,
    status5xx: fivexx,
    invariants: {
      polls: watcher.state.polls,
      budgetChecks: watcher.state.budgetChecks,
      oomSeen: watcher.state.oomSeen,
      violations,
    },
    events: { counts: collector.countsByKind(), missed: collector.missedSome },
    ok: fivexx === 0 && violations.length === 0,
  };
  tool.report(result, { json: flags.json, text: summary });
  return result.ok ? 0 : 1;
}

function summary(r: StressResult): string {
  const row = (name: string, s: OpStats) => [
    name,
    s.count,
    s.ok,
    s.status4xx,
    s.status5xx,
    s.noAnswer,
    ms(s.latencyMs.p50),
    ms(s.latencyMs.p95),
    ms(s.latencyMs.p99),
    ms(s.latencyMs.max),
  ];
  const rows = OP_KINDS.filter((k) => r.ops[k]).map((k) => row(k, r.ops[k]!));
  rows.push(row("all", r.overall));
  const parts = [
    `${r.totalOps} ops in ${(r.durationMs / 1000).toFixed(1)} s: ${r.opsPerSecond} ops/s ` +
    `(${r.clients} clients × ${r.opsPerClient}, source ${r.target.source}, seed ${r.seed})`,
    "",
    formatTable(
      ["op", "count", "ok", "4xx", "5xx", "no answer", "p50", "p95", "p99", "max"],
      rows,
    ),
    "",
  ];
  if (r.errors.length === 0) parts.push("Errors: none");
  else {
    parts.push(
      "Errors by kind:",
      formatTable(
        ["op", "status", "code", "count", "example"],
        r.errors.map((e) => [e.op, e.status, e.code, e.count, e.message.slice(0, 90)]),
      ),
    );
  }
  const counts = Object.entries(r.events.counts).map(([k, n]) => `${k} ${n}`).join(", ");
  parts.push(
    "",
    `Events during the run: ${counts || "none"}${r.events.missed ? " (some went by unseen)" : ""}`,
    `Invariants: ${r.invariants.polls} polls, ${r.invariants.budgetChecks} budget checks` +
      `${r.invariants.oomSeen ? " (an oom event was seen)" : ""}, ` +
      `${r.invariants.violations.length} violations`,
  );
  for (const v of r.invariants.violations.slice(0, 20)) {
    parts.push(`  ${v.kind}: ${v.message}`);
  }
  parts.push(r.ok ? "OK: no 5xx, no invariant violated" : "FAILED: 5xx answers or violations");
  return parts.join("\n");
}

if (import.meta.main) Deno.exit(await main());
