/**
 * The service's configuration: command-line flags and `HEADROOM_*` environment
 * variables merged into one typed object (a flag wins over its variable), validated
 * once at start with one clear message per bad value.
 *
 * Every setting is declared once, in {@link SETTINGS}: its flag, its variable, its
 * default, its schema and its help text. The {@link Config} type, the parser,
 * `--help` ({@link CONFIG_HELP}), the API's response schemas for the settings it reports
 * and the README's configuration table (`deno task docs`, scripts/docs.ts) are all read
 * from that table.
 * @module
 */
import { parseArgs } from "node:util";
import { z } from "zod";
import { parseBytes, parseDurationMs } from "./units.ts";
import { isLoopback } from "./loopback.ts";

/** A VRAM budget: a byte count, or a share of each device's total. */
export type VramBudget = { kind: "bytes"; bytes: number } | { kind: "percent"; percent: number };

/** One setting, declared once: what the parser, `--help`, the API and the README read. */
export interface Setting<T> {
  /** The command-line flag, without its `--`. */
  flag: string;
  /** The environment variable read when the flag is absent. */
  env: string;
  /** What the flag's value looks like in `--help` (`SIZE`, `cpu|reject`); absent for an on/off switch. */
  arg?: string;
  /** The text used when neither flag nor variable is given, read like a given value; null = unset. */
  default: string | null;
  /** How the default reads in `--help` and the README. */
  shownDefault: string;
  /** The words it accepts, for a setting that takes one of a few. */
  choices?: readonly string[];
  /** Reads the text into the value, or says why it cannot. */
  schema: z.ZodType<T, string>;
  /** What it does, in one or two clauses (Markdown code spans allowed; `--help` drops the backticks). */
  help: string;
}

/** A setting with a value: its default text is read like a given value. */
function setting<T>(
  spec: Omit<Setting<T>, "shownDefault"> & { default: string; shownDefault?: string },
): Setting<T>;
/** A setting that may stay unset (null); `shownDefault` says what unset means. */
function setting<T>(spec: Setting<T> & { default: null }): Setting<T | null>;
function setting<T>(
  spec: Omit<Setting<T>, "shownDefault"> & { shownDefault?: string },
): Setting<T> {
  return { ...spec, shownDefault: spec.shownDefault ?? spec.default ?? "none" };
}

/** One of a few words; the message lists them (`expected cpu or reject`). */
function oneOf<const C extends readonly [string, ...string[]]>(choices: C) {
  const listed = choices.length === 2
    ? `${choices[0]} or ${choices[1]}`
    : `one of ${choices.join(", ")}`;
  return {
    arg: choices.join("|"),
    choices,
    schema: z.enum(choices, { error: `expected ${listed}` }),
  };
}

/** An on/off switch: the flag without a value, or its variable set to 1/true/yes or 0/false/no. */
function toggle(spec: { flag: string; env: string; help: string }): Setting<boolean> {
  return {
    ...spec,
    default: "false",
    shownDefault: "off",
    schema: z.string().transform((text, ctx) => {
      const word = text.trim().toLowerCase();
      if (["1", "true", "yes", "on"].includes(word)) return true;
      if (["", "0", "false", "no", "off"].includes(word)) return false;
      ctx.addIssue({ code: "custom", message: "expected 1/true/yes or 0/false/no" });
      return z.NEVER;
    }),
  };
}

const nonEmpty = z.string().min(1, "must not be empty");

const count = (min: number, max: number) =>
  z.string().transform((text, ctx) => {
    const value = Number(text);
    if (!/^\d+$/.test(text.trim()) || value < min || value > max) {
      ctx.addIssue({ code: "custom", message: `expected a whole number from ${min} to ${max}` });
      return z.NEVER;
    }
    return value;
  });

const bytes = z.string().transform((text, ctx) => {
  const value = parseBytes(text);
  if (value === null) {
    ctx.addIssue({ code: "custom", message: "expected a size like 8GiB, 512MB or 1073741824" });
    return z.NEVER;
  }
  return value;
});

const budget = z.string().transform((text, ctx): VramBudget => {
  const percent = /^\s*(\d+(?:\.\d+)?)\s*%\s*$/.exec(text);
  if (percent) {
    const value = Number(percent[1]);
    if (value > 0 && value <= 100) return { kind: "percent", percent: value };
    ctx.addIssue({ code: "custom", message: "a percentage must be above 0 and at most 100" });
    return z.NEVER;
  }
  const value = parseBytes(text);
  if (value === null || value <= 0) {
    ctx.addIssue({ code: "custom", message: "expected a size like 8GiB or a percentage like 90%" });
    return z.NEVER;
  }
  return { kind: "bytes", bytes: value };
});

const duration = (min: number, max: number) =>
  z.string().transform((text, ctx) => {
    const ms = parseDurationMs(text);
    if (ms === null || ms < min || ms > max) {
      ctx.addIssue({
        code: "custom",
        message: `expected a duration from ${min} ms to ${max / 1000} s, like 1h, 90s or 250ms`,
      });
      return z.NEVER;
    }
    return ms;
  });

/** A comma-separated list, each item trimmed (and mapped), each checked by `valid`. */
const list = (map: (item: string) => string, valid: RegExp, wrong: (item: string) => string) =>
  z.string().transform((text, ctx) => {
    const items = text.split(",").map((item) => map(item.trim())).filter(Boolean);
    const bad = items.find((item) => !valid.test(item));
    if (bad !== undefined) {
      ctx.addIssue({ code: "custom", message: wrong(bad) });
      return z.NEVER;
    }
    return items;
  });

/**
 * Every setting, in the order `--help` and the README list them. The key is the field's
 * name in {@link Config}.
 */
export const SETTINGS = {
  host: setting({
    flag: "host",
    env: "HEADROOM_HOST",
    arg: "HOST",
    default: "127.0.0.1",
    schema: nonEmpty,
    help: "address to bind; a non-loopback address needs `HEADROOM_TOKEN` " +
      "(or `--insecure-no-token`)",
  }),
  port: setting({
    flag: "port",
    env: "HEADROOM_PORT",
    arg: "PORT",
    default: "8000",
    schema: z.string().transform((text, ctx) => {
      const port = Number(text);
      if (!/^\d+$/.test(text.trim()) || port < 0 || port > 65535) {
        ctx.addIssue({ code: "custom", message: "expected a port number from 0 to 65535" });
        return z.NEVER;
      }
      return port;
    }),
    help: "port to listen on (0 picks a free one)",
  }),
  token: setting({
    flag: "token",
    env: "HEADROOM_TOKEN",
    arg: "TOKEN",
    default: null,
    shownDefault: "none",
    schema: z.string().min(16, "must be at least 16 characters"),
    help: "API token (16+ characters): mutating endpoints need `Authorization: Bearer <token>`",
  }),
  insecureNoToken: toggle({
    flag: "insecure-no-token",
    env: "HEADROOM_INSECURE_NO_TOKEN",
    help: "serve a non-loopback address without a token (loudly warned about at start)",
  }),
  tokenForReads: toggle({
    flag: "token-for-reads",
    env: "HEADROOM_TOKEN_FOR_READS",
    help: "reads (GET) need the token too",
  }),
  tokenForInfer: toggle({
    flag: "token-for-infer",
    env: "HEADROOM_TOKEN_FOR_INFER",
    help: "inference (infer, OCR, streams) needs the token too",
  }),
  corsOrigins: setting({
    flag: "cors-origins",
    env: "HEADROOM_CORS_ORIGINS",
    arg: "LIST",
    default: "",
    shownDefault: "none",
    schema: list(
      (origin) => origin,
      /^https?:\/\/[^/\s]+$/,
      (origin) => `"${origin}" is not an origin like https://example.com`,
    ),
    help: "comma-separated origins allowed by CORS and allowed to call mutating routes " +
      "(none: only Headroom's own pages may)",
  }),
  allowedHosts: setting({
    flag: "allowed-hosts",
    env: "HEADROOM_ALLOWED_HOSTS",
    arg: "LIST",
    default: "",
    shownDefault: "none",
    schema: list(
      (host) => host.toLowerCase(),
      /^[a-z0-9.\-\[\]:]+$/,
      (host) => `"${host}" is not a host name like headroom.internal (no scheme, no port)`,
    ),
    help: "comma-separated `Host` names accepted besides loopback ones while bound to loopback " +
      "(DNS-rebinding protection)",
  }),
  maxStreams: setting({
    flag: "max-streams",
    env: "HEADROOM_MAX_STREAMS",
    arg: "N",
    default: "64",
    schema: count(1, 100_000),
    help: "most SSE and WebSocket connections open at once (503 past it)",
  }),
  maxConnections: setting({
    flag: "max-connections",
    env: "HEADROOM_MAX_CONNECTIONS",
    arg: "N",
    default: null,
    shownDefault: "from the descriptor limit",
    schema: count(1, 1_000_000),
    help: "most TCP connections open at once (a 503 and close past it); unset, a third of the " +
      "descriptor limit less a reserve (each connection takes three)",
  }),
  headerTimeoutMs: setting({
    flag: "header-timeout",
    env: "HEADROOM_HEADER_TIMEOUT",
    arg: "DURATION",
    default: "10s",
    schema: duration(100, 3_600_000),
    help: "how long a connection may take to send its first request's headers before it is closed",
  }),
  idleTimeoutMs: setting({
    flag: "idle-timeout",
    env: "HEADROOM_IDLE_TIMEOUT",
    arg: "DURATION",
    default: "60s",
    schema: duration(100, 86_400_000),
    help: "how long a connection may stay silent both ways (keep-alive idle, a stalled body) " +
      "before it is closed",
  }),
  queueLimit: setting({
    flag: "queue-limit",
    env: "HEADROOM_QUEUE_LIMIT",
    arg: "N",
    default: "256",
    schema: count(1, 100_000),
    help: "most requests waiting or running on one pipeline (429 with `Retry-After` past it); " +
      "high enough for 64 clients of one model to wait for their batch",
  }),
  dataDir: setting({
    flag: "data-dir",
    env: "HEADROOM_DATA_DIR",
    arg: "DIR",
    default: "data",
    schema: nonEmpty,
    help: "where the Deno KV file and generated models live",
  }),
  kv: setting({
    flag: "kv",
    env: "HEADROOM_KV",
    arg: "PATH|URL",
    default: null,
    shownDefault: "DATA_DIR/headroom.kv",
    schema: nonEmpty,
    help: "the Deno KV for profiles and events: a path or a remote URL",
  }),
  gpu: setting({
    flag: "gpu",
    env: "HEADROOM_GPU",
    ...oneOf(["auto", "nvidia", "webgpu", "software", "cpu"]),
    default: "auto",
    help: "how to find a GPU: `auto` tries NVML, the CUDA runtime, then a hardware WebGPU " +
      "adapter; `software` accepts a software adapter (llvmpipe); `cpu` uses none",
  }),
  vramBudget: setting({
    flag: "vram-budget",
    env: "HEADROOM_VRAM_BUDGET",
    arg: "SIZE|PCT",
    default: null,
    shownDefault: "the device's total",
    schema: budget,
    help: "VRAM Headroom may use, like `8GiB` or `90%`; needed in bytes for `webgpu` and " +
      "`software`, whose adapters report no memory",
  }),
  headroomBytes: setting({
    flag: "headroom",
    env: "HEADROOM_HEADROOM",
    arg: "SIZE",
    default: "1.5GiB",
    schema: bytes,
    help: "free VRAM to keep, exactly as given; one at or above the budget (or the device's " +
      "total) is a start-up error naming both; `GET /api/v1/hardware/vram` shows the one in force",
  }),
  sampleMs: setting({
    flag: "sample-ms",
    env: "HEADROOM_SAMPLE_MS",
    arg: "MS",
    default: "1000",
    schema: z.string().transform((text, ctx) => {
      const ms = Number(text);
      if (!/^\d+$/.test(text.trim()) || ms < 50 || ms > 60_000) {
        ctx.addIssue({ code: "custom", message: "expected milliseconds from 50 to 60000" });
        return z.NEVER;
      }
      return ms;
    }),
    help: "VRAM sampling interval, in milliseconds",
  }),
  historyMs: setting({
    flag: "history",
    env: "HEADROOM_HISTORY",
    arg: "DURATION",
    default: "1h",
    schema: duration(1_000, 7 * 86_400_000),
    help: "how much sample history to keep",
  }),
  modelsFile: setting({
    flag: "models",
    env: "HEADROOM_MODELS",
    arg: "FILE",
    default: null,
    shownDefault: "the built-in catalog",
    schema: nonEmpty,
    help: "the models file, which replaces the built-in catalog",
  }),
  nvmlLibrary: setting({
    flag: "nvml-library",
    env: "HEADROOM_NVML_LIBRARY",
    arg: "PATH",
    default: null,
    shownDefault: "search",
    schema: nonEmpty,
    help: "the `libnvidia-ml.so` to load",
  }),
  cudartLibrary: setting({
    flag: "cudart-library",
    env: "HEADROOM_CUDART_LIBRARY",
    arg: "PATH",
    default: null,
    shownDefault: "search",
    schema: nonEmpty,
    help: "the `libcudart.so` to load",
  }),
  onInsufficientVram: setting({
    flag: "on-insufficient-vram",
    env: "HEADROOM_ON_INSUFFICIENT_VRAM",
    ...oneOf(["cpu", "reject"]),
    default: "cpu",
    help: "a model that cannot fit on the GPU even after evicting runs on the CPU, or is " +
      "refused (507); while the GPU is lost, new GPU placements go to the CPU, or answer 503",
  }),
  mode: setting({
    flag: "mode",
    env: "HEADROOM_MODE",
    ...oneOf(["shared", "exclusive"]),
    default: "shared",
    help: "`shared`: models coexist; `exclusive`: a request for a model that is not loaded " +
      "switches to it (an `auto-switch` event)",
  }),
  keepAliveMs: setting({
    flag: "keep-alive",
    env: "HEADROOM_KEEP_ALIVE",
    arg: "DURATION",
    default: "off",
    schema: z.string().transform((text, ctx) => {
      if (["off", "0", "none", "never"].includes(text.trim().toLowerCase())) return null;
      const ms = parseDurationMs(text);
      if (ms === null || ms < 1_000 || ms > 30 * 86_400_000) {
        ctx.addIssue({
          code: "custom",
          message: "expected off or a duration from 1 s to 30 days, like 5m or 1h",
        });
        return z.NEVER;
      }
      return ms;
    }),
    help: "idle time after which a model is offloaded or unloaded, like `5m` or `1h`; " +
      "per model `keepAlive` in the models file",
  }),
  idleAction: setting({
    flag: "idle-action",
    env: "HEADROOM_IDLE_ACTION",
    ...oneOf(["offload", "unload"]),
    default: "offload",
    help: "what keep-alive does when it runs out: move the model to the CPU, or unload it; " +
      "per model `idleAction`",
  }),
  requestTimeoutMs: setting({
    flag: "request-timeout",
    env: "HEADROOM_REQUEST_TIMEOUT",
    arg: "DURATION",
    default: "120s",
    schema: duration(100, 86_400_000),
    help: "a request past it (queue included) answers 504; a worker stuck past it is replaced",
  }),
  maxWaitMs: setting({
    flag: "max-wait",
    env: "HEADROOM_MAX_WAIT",
    arg: "DURATION",
    default: "2s",
    schema: duration(0, 3_600_000),
    help: "exclusive mode's fairness limit: the loaded model's queued requests are served " +
      "before switching away, but no request waits longer than this for its model because " +
      "others kept coming; `0` serves first come, first served (a switch per alternation)",
  }),
  pluginMemoryBytes: setting({
    flag: "plugin-memory",
    env: "HEADROOM_PLUGIN_MEMORY",
    arg: "SIZE",
    default: "2GiB",
    schema: bytes.refine((n) => n >= 64 * 2 ** 20, "must be at least 64MiB"),
    help: "resident memory one plugin process may hold, heap and off-heap buffers together " +
      "(checked while it runs and after each reply, on Linux); past it the process is ended " +
      "and only its pipeline fails, naming the figure",
  }),
  cpuEngine: setting({
    flag: "cpu-engine",
    env: "HEADROOM_CPU_ENGINE",
    ...oneOf(["auto", "native", "wasm"]),
    default: "auto",
    help: "the CPU engine: `auto` is native when onnxruntime-node loads, else wasm (with the " +
      "reason); `native` is a start-up error when it cannot load",
  }),
  cpuThreads: setting({
    flag: "cpu-threads",
    env: "HEADROOM_CPU_THREADS",
    arg: "N",
    default: null,
    shownDefault: "every core, at most 16",
    schema: count(1, 256),
    help: "intra-op threads of the native CPU engine",
  }),
  ortNodeDir: setting({
    flag: "ort-node-dir",
    env: "HEADROOM_ORT_NODE_DIR",
    arg: "DIR",
    default: null,
    shownDefault: "node_modules/onnxruntime-node",
    schema: nonEmpty,
    help: "the onnxruntime-node package to load (a build of your own, say)",
  }),
  nodeName: setting({
    flag: "node-name",
    env: "HEADROOM_NODE_NAME",
    arg: "NAME",
    default: null,
    shownDefault: "the host name",
    schema: nonEmpty,
    help: "the `Hostname` label on `/metrics` (the DaemonSet sets the node's name)",
  }),
};

/** The name of a setting: a key of {@link SETTINGS} and a field of {@link Config}. */
export type SettingName = keyof typeof SETTINGS;

/** The value a setting holds once read (null where it may stay unset). */
export type SettingValue<K extends SettingName> = typeof SETTINGS[K] extends Setting<infer T> ? T
  : never;

/** The validated configuration every part of the service reads: one field per setting. */
export type Config = { [K in SettingName]: SettingValue<K> } & {
  /**
   * How the user gave each setting (`--headroom`, or `HEADROOM_HEADROOM` from the
   * environment), so that checks made after parsing name what was typed; absent = default.
   */
  givenAs?: Partial<Record<SettingName, string>>;
};

/** Every setting with its name, in declaration order. */
export function settingEntries(): Array<[SettingName, Setting<unknown>]> {
  return Object.entries(SETTINGS) as Array<[SettingName, Setting<unknown>]>;
}

/** Thrown when one or more values are bad; `problems` holds one message per value. */
export class ConfigError extends Error {
  override name = "ConfigError";
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  ${problems.join("\n  ")}`);
  }
}

/** A setting's flag as `--help` shows it: `--port PORT`, or `--token-for-reads` for a switch. */
export function flagUsage(setting: Setting<unknown>): string {
  return setting.arg ? `--${setting.flag} ${setting.arg}` : `--${setting.flag}`;
}

/** Breaks `text` into lines of at most `width` characters, at spaces. */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  return line ? [...lines, line] : lines;
}

/** The `--help` text, built from {@link SETTINGS}: each flag, its variable, its default, what it does. */
export const CONFIG_HELP: string = [
  "Usage: deno task start [flags]",
  "",
  "Flags (each also read from its environment variable; a flag wins):",
  ...settingEntries().flatMap(([, setting]) => [
    `  ${flagUsage(setting)}  ${setting.env}  (default: ${setting.shownDefault})`,
    ...wrap(setting.help.replaceAll("`", ""), 88).map((line) => `      ${line}`),
  ]),
  "  --help",
  "      print this help",
  "",
].join("\n");

/** What `parseConfig` found: either a config, or a request for help. */
export type ConfigResult = { help: true } | { help: false; config: Config };

/**
 * Reads flags and environment variables into a {@link Config}.
 * Throws {@link ConfigError} listing every bad value, each naming its flag or variable.
 */
export function parseConfig(
  args: string[],
  env: { get(name: string): string | undefined },
): ConfigResult {
  const options: Record<string, { type: "string" | "boolean" }> = {
    help: { type: "boolean" },
  };
  for (const [, setting] of settingEntries()) {
    options[setting.flag] = { type: setting.arg ? "string" : "boolean" };
  }
  let flags: Record<string, string | boolean | undefined>;
  try {
    flags = parseArgs({ args, options, strict: true, allowPositionals: false }).values;
  } catch (error) {
    throw new ConfigError([`${(error as Error).message}. Run with --help for the flags.`]);
  }
  if (flags.help) return { help: true };

  const values: Record<string, unknown> = {};
  const origin: Partial<Record<SettingName, string>> = {};
  const problems: string[] = [];
  for (const [name, setting] of settingEntries()) {
    const flag = flags[setting.flag];
    const fromEnv = env.get(setting.env);
    let text = setting.default;
    if (flag !== undefined) {
      text = String(flag);
      origin[name] = `--${setting.flag}`;
    } else if (fromEnv !== undefined && fromEnv !== "") {
      text = fromEnv;
      origin[name] = setting.env;
    }
    if (text === null) {
      values[name] = null;
      continue;
    }
    const parsed = setting.schema.safeParse(text);
    if (parsed.success) values[name] = parsed.data;
    else {
      const where = origin[name] ?? `--${setting.flag}`;
      for (const issue of parsed.error.issues) {
        problems.push(`${where}=${JSON.stringify(text)}: ${issue.message}`);
      }
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  const config = { ...values, givenAs: origin } as Config;
  const crossProblems = crossChecks(config, (name) => origin[name] ?? SETTINGS[name].env);
  if (crossProblems.length > 0) throw new ConfigError(crossProblems);
  return { help: false, config };
}

/**
 * Checks that need two values at once. Each message names the setting as the user gave
 * it (`--host`, or `HEADROOM_HOST` when it came from the environment).
 */
function crossChecks(config: Config, named: (name: SettingName) => string): string[] {
  const problems: string[] = [];
  if ((config.tokenForReads || config.tokenForInfer) && !config.token) {
    const which = config.tokenForReads ? named("tokenForReads") : named("tokenForInfer");
    problems.push(`${which}: needs a token to ask for (set --token or HEADROOM_TOKEN)`);
  }
  if (!isLoopback(config.host) && !config.token && !config.insecureNoToken) {
    problems.push(
      `${named("host")}=${
        JSON.stringify(config.host)
      }: binding beyond loopback needs an API token ` +
        `(set --token or HEADROOM_TOKEN), or pass --insecure-no-token to accept the risk`,
    );
  }
  if (
    (config.gpu === "webgpu" || config.gpu === "software") && config.vramBudget?.kind !== "bytes"
  ) {
    problems.push(
      `${named("gpu")}=${config.gpu}: needs a budget in bytes (--vram-budget or ` +
        `HEADROOM_VRAM_BUDGET, like 4GiB): a WebGPU adapter does not report its memory`,
    );
  }
  const budget = config.vramBudget;
  if (budget?.kind === "bytes" && config.headroomBytes >= budget.bytes) {
    problems.push(
      headroomProblem(
        config.headroomBytes,
        budget.bytes,
        "the VRAM budget",
        config.givenAs?.headroomBytes,
      ),
    );
  }
  return problems;
}

/**
 * The message for a headroom at or above the budget: nothing could ever be placed.
 * Used at parse time for a budget in bytes, and at start for a share of the device.
 */
export function headroomProblem(
  headroomBytes: number,
  budgetBytes: number,
  what: string,
  givenAs: string | undefined,
): string {
  const name = givenAs ?? "--headroom (its default)";
  return `${name}: the headroom (${headroomBytes} bytes) is at or above ${what} ` +
    `(${budgetBytes} bytes): nothing could be placed on the GPU. Lower --headroom or raise ` +
    `--vram-budget.`;
}

/** True for addresses only this machine can reach (the one rule is core/loopback.ts). */
export { isLoopback };
