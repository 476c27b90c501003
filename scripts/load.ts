/**
 * `deno task load`: loads every model (or `--models a,b`) one at a time, in isolation,
 * measures each (VRAM, tracked GPU bytes, RAM, milliseconds), shows a progress bar while
 * it runs and a table at the end (or JSON with `--json`).
 *
 * In-process by default: the service starts here with the configuration read from the
 * same flags and `HEADROOM_*` variables as the server (every flag this tool does not
 * know is passed to the server's parser). With `--url` it asks a running server instead
 * (`POST /api/v1/models/test-load`, NDJSON progress).
 * @module
 */
import { CONFIG_HELP, ConfigError } from "../core/config.ts";
import { startHeadroom } from "../server/serve_headroom.ts";
import type { TestLoadEvent } from "../core/placement/types.ts";
import { PipelineError } from "../core/pipelines/pipeline_error.ts";
import type { SessionDevice } from "../core/pipelines/protocol.ts";
import { ApiError, sendApi } from "../api_client/mod.ts";
import { readNdjson } from "../api_client/ndjson.ts";
import { type Progress, urlFlag, UsageError } from "./_lib/cli.ts";
import { defineTool, flag } from "./_lib/tool.ts";

const tool = defineTool({
  name: "load",
  usage: `deno task load [--models a,b] [--device gpu|cpu] [--json]
                      [--url http://127.0.0.1:8000 [--token TOKEN]] [server flags]`,
  about: `Loads each model alone (every other model unloaded first), measures it, unloads it:
VRAM (device used after - before where a driver reports it, else tracked GPU bytes),
tracked GPU bytes, process RAM, load time. The figures are saved as the models'
last-known profiles.`,
  flags: {
    models: {
      arg: "a,b",
      help: "model ids to load (default: every model in the catalog)",
      schema: flag.custom((text) => {
        if (text === undefined) return null;
        const ids = text.split(",").map((s) => s.trim()).filter((s) => s.length > 0);
        if (ids.length === 0) throw new UsageError("--models", "expected model ids like a,b");
        return ids;
      }),
    },
    device: {
      arg: "gpu|cpu",
      help: "where to load them (default: the GPU when one is usable)",
      schema: flag.oneOf(["gpu", "cpu"] as const, null),
    },
    json: { help: "print the measurements as JSON instead of a table" },
    url: {
      arg: "URL",
      help: `ask a running Headroom (POST /api/v1/models/test-load)
instead of starting one in this process`,
      schema: flag.custom((text) => {
        try {
          return urlFlag("--url", text);
        } catch {
          throw new UsageError(
            "--url",
            `${JSON.stringify(text)}: expected a URL like http://host:8000`,
          );
        }
      }),
    },
    token: { arg: "TOKEN", help: "API token for --url (else HEADROOM_TOKEN)", schema: flag.text() },
  },
  notes: `In-process, every other flag and HEADROOM_* variable configures the service as for
\`deno task start\`. The models file comes from HEADROOM_MODELS here (--models names
the models to load). Exit status: 0 when every model loaded, 1 when one failed,
2 for bad arguments.

Server flags:
${CONFIG_HELP.split("\n").slice(3).join("\n")}`,
  // Every flag the tool does not know configures the in-process server.
  passThrough: true,
  // As the server's own flags are worded: --device="tpu": expected gpu or cpu.
  formatProblem: (flag, text, problem) =>
    text !== undefined && problem.startsWith(`${JSON.stringify(text)}: `)
      ? `${flag}=${problem}`
      : `${flag}: ${problem}`,
});

/** The tool's help text. */
export const HELP: string = tool.help;

/** One measured (or failed) model, as printed. */
export interface LoadRow {
  model: string;
  device: SessionDevice;
  placement: string | null;
  vramBytes: number | null;
  vramBasis: "driver" | "tracked" | null;
  trackedBytes: number | null;
  /** RAM its session holds (weights for the native engine, wasm memory for wasm); never negative. */
  ramBytes: number | null;
  /** The whole process's RSS after the load (every pipeline shares it). */
  rssBytes: number | null;
  /** The engine it ran on ("native", "wasm", "webgpu"). */
  engine: string | null;
  ms: number | null;
  error: string | null;
}

/** The tool's own options, and every other argument for the server's parser. */
export interface LoadArgs {
  models: string[] | null;
  device: SessionDevice | null;
  url: string | null;
  token: string | null;
  json: boolean;
  rest: string[];
}

/** Reads the arguments: the tool's own flags, and the rest for the server's parser (exits 2 on a bad one). */
export function readArgs(args: string[]): LoadArgs {
  const { values, rest } = tool.parse(args);
  return { ...values, token: values.token ?? null, rest };
}

/** Turns a `measured` or `error` event into a row. */
function rowOf(event: TestLoadEvent, device: SessionDevice): LoadRow | null {
  if (event.event === "measured") {
    const m = event.measurement;
    return {
      model: m.model,
      device: m.device,
      placement: m.placement,
      vramBytes: m.vramBytes,
      vramBasis: m.vramBasis,
      trackedBytes: m.trackedBytes,
      ramBytes: m.ramBytes,
      rssBytes: m.rssBytes,
      engine: m.engine,
      ms: m.ms,
      error: null,
    };
  }
  if (event.event === "error") {
    return {
      model: event.model,
      device,
      placement: null,
      vramBytes: null,
      vramBasis: null,
      trackedBytes: null,
      ramBytes: null,
      rssBytes: null,
      engine: null,
      ms: null,
      error: event.message,
    };
  }
  return null;
}

/** Follows progress events with a bar on stderr (drawn only on a terminal). */
function progressBar() {
  let bar: Progress | null = null;
  return (event: TestLoadEvent) => {
    if (event.event === "started") {
      bar ??= tool.progress("loading", event.total);
      bar.update(event.index, event.model);
    } else if (event.event === "measured" || event.event === "error") {
      bar?.update(event.index + 1, event.event === "error" ? `${event.model} failed` : "");
    } else if (event.event === "done") bar?.stop();
  };
}

/** Runs the test load in this process, on a service configured from `rest` and the environment. */
async function runInProcess(args: LoadArgs, onEvent: (event: TestLoadEvent) => void) {
  // The configured data dir (not a temp one): the measurements are saved as profiles.
  const service = await startHeadroom({ args: args.rest, env: Deno.env, tempDataDir: false });
  try {
    const { scheduler } = service.services;
    const ids = args.models ?? scheduler.list().map((m) => m.id);
    for (const id of ids) scheduler.model(id); // an unknown id fails before anything loads
    const device = args.device ?? scheduler.defaultDevice;
    const rows: LoadRow[] = [];
    await scheduler.testLoad(ids, device, (event) => {
      onEvent(event);
      const row = rowOf(event, device);
      if (row) rows.push(row);
    });
    return rows;
  } finally {
    await service.close();
  }
}

/** Runs the test load on the server at `args.url`, following its NDJSON progress. */
async function runRemote(args: LoadArgs, onEvent: (event: TestLoadEvent) => void) {
  const token = args.token ?? Deno.env.get("HEADROOM_TOKEN") ?? null;
  const body: Record<string, unknown> = {};
  if (args.models) body.models = args.models;
  if (args.device) body.device = args.device;
  let response: Response;
  try {
    response = await sendApi(`${args.url}/api/v1/models/test-load`, {
      method: "POST",
      body: JSON.stringify(body),
    }, token);
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    throw new RemoteError(
      error.status === 0
        ? `cannot reach ${args.url}: ${error.message}`
        : `${args.url} answered ${error.status}: ${error.message}`,
    );
  }
  const rows: LoadRow[] = [];
  let done = false;
  await readNdjson<TestLoadEvent>(response, (event) => {
    onEvent(event);
    const row = rowOf(event, args.device ?? "gpu");
    if (row) rows.push(row);
    if (event.event === "done") done = true;
  });
  if (!done) throw new RemoteError(`${args.url} ended the progress stream before "done"`);
  return rows;
}

/** The server could not be asked, or refused (exit status 1). */
class RemoteError extends Error {
  override name = "RemoteError";
}

const mb = (bytes: number | null) => bytes === null ? "" : (bytes / 1e6).toFixed(2);

/** The rows as a plain-text table (MB = 10^6 bytes). */
export function formatTable(rows: LoadRow[]): string {
  const header = [
    "model",
    "placement",
    "engine",
    "VRAM MB",
    "basis",
    "tracked MB",
    "RAM MB",
    "RSS MB",
    "load ms",
    "error",
  ];
  const cells = rows.map((r) => [
    r.model,
    r.placement ?? "",
    r.engine ?? "",
    mb(r.vramBytes),
    r.vramBasis ?? "",
    mb(r.trackedBytes),
    mb(r.ramBytes),
    mb(r.rssBytes),
    r.ms === null ? "" : r.ms.toFixed(0),
    r.error ?? "",
  ]);
  const numeric = new Set([3, 5, 6, 7, 8]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]) =>
    c.map((v, i) => numeric.has(i) ? v.padStart(widths[i]) : v.padEnd(widths[i])).join("  ")
      .trimEnd();
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...cells.map(line)].join("\n");
}

async function main(): Promise<number> {
  const args = readArgs(Deno.args);
  if (args.url && args.rest.length > 0) {
    console.error(
      `Ignored with --url (the server has its own configuration): ${args.rest.join(" ")}`,
    );
  }
  const bar = progressBar();
  let rows: LoadRow[];
  try {
    rows = args.url ? await runRemote(args, bar) : await runInProcess(args, bar);
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      return 2;
    }
    if (error instanceof PipelineError && error.code === "unknown_model") {
      console.error(`--models: ${error.message}`);
      return 2;
    }
    if (error instanceof RemoteError) {
      console.error(error.message);
      return 1;
    }
    throw error;
  }
  tool.report({ measurements: rows }, {
    json: args.json,
    text: (r) => formatTable(r.measurements),
  });
  return rows.some((r) => r.error !== null) ? 1 : 0;
}

if (import.meta.main) {
  // Workers and timers of the in-process service may linger: exit explicitly.
  Deno.exit(await main());
}
