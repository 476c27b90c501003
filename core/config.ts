/**
 * The service's configuration: command-line flags and `HEADROOM_*` environment
 * variables merged into one typed object (a flag wins over its variable), validated
 * once at start with one clear message per bad value.
 * @module
 */
import { parseArgs } from "node:util";
import { z } from "zod";
import { parseBytes, parseDurationMs } from "./units.ts";
import { isLoopback } from "./loopback.ts";

/** How Headroom looks for a GPU: `auto` tries NVML, CUDA, then a hardware WebGPU adapter. */
export type GpuMode = "auto" | "nvidia" | "webgpu" | "software" | "cpu";

/** A VRAM budget: a byte count, or a share of each device's total. */
export type VramBudget = { kind: "bytes"; bytes: number } | { kind: "percent"; percent: number };

/** The validated configuration every part of the service reads. */
export interface Config {
  host: string;
  port: number;
  /** API token; mutating endpoints require `Authorization: Bearer <token>` when set. */
  token: string | null;
  /** Serve a non-loopback address without a token (loudly warned about). */
  insecureNoToken: boolean;
  /** Reads (GET) need the token too. */
  tokenForReads: boolean;
  /** Inference (infer, OCR, streams) needs the token too. */
  tokenForInfer: boolean;
  /** Origins allowed by CORS and allowed to call mutating routes; empty = same origin only. */
  corsOrigins: string[];
  /**
   * Host names accepted in the `Host` header besides loopback names while bound to
   * loopback (DNS-rebinding protection); empty = loopback names only.
   */
  allowedHosts: string[];
  /** Most SSE and WebSocket connections open at once (503 past it). */
  maxStreams: number;
  /**
   * Most TCP connections open at once (new ones get a 503 and are closed past it); null =
   * derived from the descriptor limit (a third of it, less a reserve: each takes three).
   */
  maxConnections: number | null;
  /** How long a connection may take to send its first request's headers before it is closed. */
  headerTimeoutMs: number;
  /** How long a connection may stay silent both ways (keep-alive idle, a stalled body) before it is closed. */
  idleTimeoutMs: number;
  /** Most requests waiting or running on one pipeline (429 with Retry-After past it). */
  queueLimit: number;
  dataDir: string;
  /** Deno KV for profiles and events: a path or a remote URL; null = `<dataDir>/headroom.kv`. */
  kv: string | null;
  gpu: GpuMode;
  vramBudget: VramBudget | null;
  /** Free VRAM to keep, in bytes, exactly as configured (one at or above the budget is a start-up error). */
  headroomBytes: number;
  sampleMs: number;
  historyMs: number;
  /** Path of the models file, or null for the built-in catalog. */
  modelsFile: string | null;
  nvmlLibrary: string | null;
  cudartLibrary: string | null;
  /** What to do when a model cannot fit on the GPU even after evicting. */
  onInsufficientVram: "cpu" | "reject";
  /** shared: models coexist; exclusive: a request for a model that is not loaded switches to it. */
  mode: "shared" | "exclusive";
  /** Default idle time after which a model is offloaded or unloaded; null = off. */
  keepAliveMs: number | null;
  /** What keep-alive does when it runs out: move to the CPU, or unload. */
  idleAction: "offload" | "unload";
  /** A request past this (queue included) answers 504; a worker stuck past it is replaced. */
  requestTimeoutMs: number;
  /** The CPU engine: `auto` (native when onnxruntime-node loads, else wasm), `native`, `wasm`. */
  cpuEngine: "auto" | "native" | "wasm";
  /** Intra-op threads of the native CPU engine; null = every core (at most 16). */
  cpuThreads: number | null;
  /** onnxruntime-node's package folder; null = the project's node_modules. */
  ortNodeDir: string | null;
  /** This node's name on /metrics (the `Hostname` label); null = the machine's host name. */
  nodeName: string | null;
  /**
   * How the user gave each setting (`--headroom`, or `HEADROOM_HEADROOM` from the
   * environment), so that checks made after parsing name what was typed; absent = default.
   */
  givenAs?: Partial<Record<SettingName, string>>;
}

/** Thrown when one or more values are bad; `problems` holds one message per value. */
export class ConfigError extends Error {
  override name = "ConfigError";
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  ${problems.join("\n  ")}`);
  }
}

/** Each setting: its flag, its environment variable, and how to read and check its text. */
const SETTINGS = {
  host: { flag: "host", env: "HEADROOM_HOST" },
  port: { flag: "port", env: "HEADROOM_PORT" },
  token: { flag: "token", env: "HEADROOM_TOKEN" },
  dataDir: { flag: "data-dir", env: "HEADROOM_DATA_DIR" },
  kv: { flag: "kv", env: "HEADROOM_KV" },
  gpu: { flag: "gpu", env: "HEADROOM_GPU" },
  vramBudget: { flag: "vram-budget", env: "HEADROOM_VRAM_BUDGET" },
  headroom: { flag: "headroom", env: "HEADROOM_HEADROOM" },
  sampleMs: { flag: "sample-ms", env: "HEADROOM_SAMPLE_MS" },
  history: { flag: "history", env: "HEADROOM_HISTORY" },
  models: { flag: "models", env: "HEADROOM_MODELS" },
  nvmlLibrary: { flag: "nvml-library", env: "HEADROOM_NVML_LIBRARY" },
  cudartLibrary: { flag: "cudart-library", env: "HEADROOM_CUDART_LIBRARY" },
  onInsufficientVram: { flag: "on-insufficient-vram", env: "HEADROOM_ON_INSUFFICIENT_VRAM" },
  corsOrigins: { flag: "cors-origins", env: "HEADROOM_CORS_ORIGINS" },
  allowedHosts: { flag: "allowed-hosts", env: "HEADROOM_ALLOWED_HOSTS" },
  nodeName: { flag: "node-name", env: "HEADROOM_NODE_NAME" },
  maxStreams: { flag: "max-streams", env: "HEADROOM_MAX_STREAMS" },
  maxConnections: { flag: "max-connections", env: "HEADROOM_MAX_CONNECTIONS" },
  headerTimeout: { flag: "header-timeout", env: "HEADROOM_HEADER_TIMEOUT" },
  idleTimeout: { flag: "idle-timeout", env: "HEADROOM_IDLE_TIMEOUT" },
  queueLimit: { flag: "queue-limit", env: "HEADROOM_QUEUE_LIMIT" },
  mode: { flag: "mode", env: "HEADROOM_MODE" },
  keepAlive: { flag: "keep-alive", env: "HEADROOM_KEEP_ALIVE" },
  idleAction: { flag: "idle-action", env: "HEADROOM_IDLE_ACTION" },
  requestTimeout: { flag: "request-timeout", env: "HEADROOM_REQUEST_TIMEOUT" },
  cpuEngine: { flag: "cpu-engine", env: "HEADROOM_CPU_ENGINE" },
  cpuThreads: { flag: "cpu-threads", env: "HEADROOM_CPU_THREADS" },
  ortNodeDir: { flag: "ort-node-dir", env: "HEADROOM_ORT_NODE_DIR" },
} as const;

/** On/off settings: a flag without a value, or its variable set to 1/true/yes or 0/false/no. */
const SWITCHES = {
  insecureNoToken: { flag: "insecure-no-token", env: "HEADROOM_INSECURE_NO_TOKEN" },
  tokenForReads: { flag: "token-for-reads", env: "HEADROOM_TOKEN_FOR_READS" },
  tokenForInfer: { flag: "token-for-infer", env: "HEADROOM_TOKEN_FOR_INFER" },
} as const;

const count = (min: number, max: number) =>
  z.string().transform((text, ctx) => {
    const value = Number(text);
    if (!/^\d+$/.test(text.trim()) || value < min || value > max) {
      ctx.addIssue({ code: "custom", message: `expected a whole number from ${min} to ${max}` });
      return z.NEVER;
    }
    return value;
  });

/** The name of a setting with a value (a key of SETTINGS). */
export type SettingName = keyof typeof SETTINGS;

const bytes = (what: string) =>
  z.string().transform((text, ctx) => {
    const value = parseBytes(text);
    if (value === null) {
      ctx.addIssue({ code: "custom", message: `expected ${what} like 8GiB, 512MB or 1073741824` });
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

const nonEmpty = z.string().min(1, "must not be empty");

/** The schema of every setting's text (undefined = not given). */
const schema = z.object({
  host: nonEmpty.default("127.0.0.1"),
  port: z.string().default("8000").transform((text, ctx) => {
    const port = Number(text);
    if (!/^\d+$/.test(text.trim()) || port < 0 || port > 65535) {
      ctx.addIssue({ code: "custom", message: "expected a port number from 0 to 65535" });
      return z.NEVER;
    }
    return port;
  }),
  token: z.string().min(16, "must be at least 16 characters").optional(),
  dataDir: nonEmpty.default("data"),
  kv: nonEmpty.optional(),
  gpu: z.enum(["auto", "nvidia", "webgpu", "software", "cpu"], {
    error: "expected one of auto, nvidia, webgpu, software, cpu",
  }).default("auto"),
  vramBudget: budget.optional(),
  headroom: bytes("a size").prefault(String(1.5 * 2 ** 30)),
  sampleMs: z.string().default("1000").transform((text, ctx) => {
    const ms = Number(text);
    if (!/^\d+$/.test(text.trim()) || ms < 50 || ms > 60_000) {
      ctx.addIssue({ code: "custom", message: "expected milliseconds from 50 to 60000" });
      return z.NEVER;
    }
    return ms;
  }),
  history: duration(1_000, 7 * 86_400_000).prefault("1h"),
  models: nonEmpty.optional(),
  nvmlLibrary: nonEmpty.optional(),
  cudartLibrary: nonEmpty.optional(),
  onInsufficientVram: z.enum(["cpu", "reject"], { error: "expected cpu or reject" }).default(
    "cpu",
  ),
  corsOrigins: z.string().transform((text, ctx) => {
    const origins = text.split(",").map((o) => o.trim()).filter(Boolean);
    for (const origin of origins) {
      if (!/^https?:\/\/[^/\s]+$/.test(origin)) {
        ctx.addIssue({
          code: "custom",
          message: `"${origin}" is not an origin like https://example.com`,
        });
        return z.NEVER;
      }
    }
    return origins;
  }).optional(),
  allowedHosts: z.string().transform((text, ctx) => {
    const hosts = text.split(",").map((h) => h.trim().toLowerCase()).filter(Boolean);
    for (const host of hosts) {
      if (!/^[a-z0-9.\-\[\]:]+$/.test(host)) {
        ctx.addIssue({
          code: "custom",
          message: `"${host}" is not a host name like headroom.internal (no scheme, no port)`,
        });
        return z.NEVER;
      }
    }
    return hosts;
  }).optional(),
  nodeName: nonEmpty.optional(),
  maxStreams: count(1, 100_000).prefault("64"),
  maxConnections: count(1, 1_000_000).optional(),
  headerTimeout: duration(100, 3_600_000).prefault("10s"),
  idleTimeout: duration(100, 86_400_000).prefault("60s"),
  queueLimit: count(1, 100_000).prefault("32"),
  mode: z.enum(["shared", "exclusive"], { error: "expected shared or exclusive" }).default(
    "shared",
  ),
  keepAlive: z.string().transform((text, ctx) => {
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
  }).optional(),
  idleAction: z.enum(["offload", "unload"], { error: "expected offload or unload" }).default(
    "offload",
  ),
  requestTimeout: duration(100, 86_400_000).prefault("120s"),
  cpuEngine: z.enum(["auto", "native", "wasm"], { error: "expected one of auto, native, wasm" })
    .default("auto"),
  cpuThreads: count(1, 256).optional(),
  ortNodeDir: nonEmpty.optional(),
});

/** Help text for `--help`: every flag with its variable. */
export const CONFIG_HELP = `Usage: deno task start [flags]

Flags (each also read from its environment variable; a flag wins):
  --host HOST                    HEADROOM_HOST          address to bind (127.0.0.1)
  --port PORT                    HEADROOM_PORT          port (8000; 0 picks a free one)
  --token TOKEN                  HEADROOM_TOKEN         API token for mutating endpoints (16+ chars)
  --insecure-no-token            HEADROOM_INSECURE_NO_TOKEN  allow a non-loopback host without a token
  --token-for-reads              HEADROOM_TOKEN_FOR_READS    reads need the token too
  --token-for-infer              HEADROOM_TOKEN_FOR_INFER    inference (infer, OCR, streams) needs it too
  --cors-origins LIST            HEADROOM_CORS_ORIGINS  comma-separated origins allowed by CORS and
                                                        to call mutating routes (none: same origin only)
  --allowed-hosts LIST           HEADROOM_ALLOWED_HOSTS names accepted in Host besides loopback ones
                                                        while bound to loopback (none)
  --max-streams N                HEADROOM_MAX_STREAMS   SSE + WebSocket connections at once (64)
  --max-connections N            HEADROOM_MAX_CONNECTIONS  TCP connections at once (from the fd limit)
  --header-timeout D             HEADROOM_HEADER_TIMEOUT  first request's headers must arrive in (10s)
  --idle-timeout D               HEADROOM_IDLE_TIMEOUT  a connection silent both ways is closed (60s)
  --queue-limit N                HEADROOM_QUEUE_LIMIT   requests queued per pipeline before 429 (32)
  --data-dir DIR                 HEADROOM_DATA_DIR      where KV and generated models live (data)
  --kv PATH|URL                  HEADROOM_KV            Deno KV for profiles and events (DATA_DIR/headroom.kv)
  --gpu MODE                     HEADROOM_GPU           auto | nvidia | webgpu | software | cpu (auto)
  --vram-budget SIZE|PCT         HEADROOM_VRAM_BUDGET   e.g. 8GiB or 90% (needed for webgpu/software)
  --headroom SIZE                HEADROOM_HEADROOM      free VRAM to keep (1.5GiB)
  --sample-ms MS                 HEADROOM_SAMPLE_MS     VRAM sampling interval (1000)
  --history DURATION             HEADROOM_HISTORY       history kept (1h)
  --models FILE                  HEADROOM_MODELS        models file (built-in catalog when unset)
  --nvml-library PATH            HEADROOM_NVML_LIBRARY  libnvidia-ml.so to load
  --cudart-library PATH          HEADROOM_CUDART_LIBRARY libcudart.so to load
  --on-insufficient-vram MODE    HEADROOM_ON_INSUFFICIENT_VRAM  cpu | reject (cpu)
  --mode MODE                    HEADROOM_MODE          shared | exclusive: a request for a model
                                                        that is not loaded switches to it (shared)
  --keep-alive DURATION          HEADROOM_KEEP_ALIVE    idle time before a model is offloaded or
                                                        unloaded, e.g. 5m (off); per model in the models file
  --idle-action ACTION           HEADROOM_IDLE_ACTION   offload | unload when keep-alive runs out (offload)
  --request-timeout DURATION     HEADROOM_REQUEST_TIMEOUT  a request past it answers 504 (120s)
  --cpu-engine ENGINE            HEADROOM_CPU_ENGINE    auto | native | wasm (auto: native when
                                                        onnxruntime-node loads, else wasm)
  --cpu-threads N                HEADROOM_CPU_THREADS   native engine intra-op threads (every core, max 16)
  --ort-node-dir DIR             HEADROOM_ORT_NODE_DIR  onnxruntime-node package (node_modules/onnxruntime-node)
  --node-name NAME               HEADROOM_NODE_NAME     the Hostname label on /metrics (host name)
  --help                                                print this help

The headroom is used exactly as given; one at or above the VRAM budget (or the device's
total) is refused at start with both figures. GET /api/v1/hardware/vram shows the one in force.
`;

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
  for (const setting of Object.values(SWITCHES)) options[setting.flag] = { type: "boolean" };
  for (const setting of Object.values(SETTINGS)) options[setting.flag] = { type: "string" };
  let flags: Record<string, string | boolean | undefined>;
  try {
    flags = parseArgs({ args, options, strict: true, allowPositionals: false }).values;
  } catch (error) {
    throw new ConfigError([`${(error as Error).message}. Run with --help for the flags.`]);
  }
  if (flags.help) return { help: true };

  const raw: Partial<Record<SettingName, string>> = {};
  const origin: Partial<Record<SettingName, string>> = {};
  for (
    const [name, setting] of Object.entries(SETTINGS) as [
      SettingName,
      typeof SETTINGS[SettingName],
    ][]
  ) {
    const flag = flags[setting.flag];
    const fromEnv = env.get(setting.env);
    if (typeof flag === "string") {
      raw[name] = flag;
      origin[name] = `--${setting.flag}`;
    } else if (fromEnv !== undefined && fromEnv !== "") {
      raw[name] = fromEnv;
      origin[name] = setting.env;
    }
  }

  const switches = {} as Record<keyof typeof SWITCHES, boolean>;
  const switchProblems: string[] = [];
  for (
    const [name, setting] of Object.entries(SWITCHES) as [
      keyof typeof SWITCHES,
      typeof SWITCHES[keyof typeof SWITCHES],
    ][]
  ) {
    const fromEnv = (env.get(setting.env) ?? "").trim().toLowerCase();
    if (flags[setting.flag] === true) switches[name] = true;
    else if (["1", "true", "yes", "on"].includes(fromEnv)) switches[name] = true;
    else if (["", "0", "false", "no", "off"].includes(fromEnv)) switches[name] = false;
    else {
      switchProblems.push(
        `${setting.env}=${JSON.stringify(env.get(setting.env))}: expected 1/true/yes or 0/false/no`,
      );
      switches[name] = false;
    }
  }

  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const name = issue.path[0] as SettingName;
      const where = origin[name] ?? `--${SETTINGS[name].flag}`;
      return `${where}=${JSON.stringify(raw[name] ?? "")}: ${issue.message}`;
    });
    throw new ConfigError([...switchProblems, ...problems]);
  }
  if (switchProblems.length > 0) throw new ConfigError(switchProblems);
  const value = parsed.data;
  const config: Config = {
    host: value.host,
    port: value.port,
    token: value.token ?? null,
    insecureNoToken: switches.insecureNoToken,
    tokenForReads: switches.tokenForReads,
    tokenForInfer: switches.tokenForInfer,
    corsOrigins: value.corsOrigins ?? [],
    allowedHosts: value.allowedHosts ?? [],
    maxStreams: value.maxStreams,
    maxConnections: value.maxConnections ?? null,
    headerTimeoutMs: value.headerTimeout,
    idleTimeoutMs: value.idleTimeout,
    queueLimit: value.queueLimit,
    dataDir: value.dataDir,
    kv: value.kv ?? null,
    gpu: value.gpu,
    vramBudget: value.vramBudget ?? null,
    headroomBytes: value.headroom,
    sampleMs: value.sampleMs,
    historyMs: value.history,
    modelsFile: value.models ?? null,
    nvmlLibrary: value.nvmlLibrary ?? null,
    cudartLibrary: value.cudartLibrary ?? null,
    onInsufficientVram: value.onInsufficientVram,
    mode: value.mode,
    keepAliveMs: value.keepAlive ?? null,
    idleAction: value.idleAction,
    requestTimeoutMs: value.requestTimeout,
    cpuEngine: value.cpuEngine,
    cpuThreads: value.cpuThreads ?? null,
    ortNodeDir: value.ortNodeDir ?? null,
    nodeName: value.nodeName ?? null,
    givenAs: origin,
  };
  const named = (name: SettingName) => origin[name] ?? SETTINGS[name].env;
  const switchNamed = (name: keyof typeof SWITCHES) =>
    flags[SWITCHES[name].flag] === true ? `--${SWITCHES[name].flag}` : SWITCHES[name].env;
  const problems = crossChecks(config, named, switchNamed);
  if (problems.length > 0) throw new ConfigError(problems);
  return { help: false, config };
}

/**
 * Checks that need two values at once. Each message names the setting as the user gave
 * it (`--host`, or `HEADROOM_HOST` when it came from the environment).
 */
function crossChecks(
  config: Config,
  named: (name: SettingName) => string,
  switchNamed: (name: keyof typeof SWITCHES) => string,
): string[] {
  const problems: string[] = [];
  if ((config.tokenForReads || config.tokenForInfer) && !config.token) {
    const which = config.tokenForReads
      ? switchNamed("tokenForReads")
      : switchNamed("tokenForInfer");
    problems.push(
      `${which}: needs a token to ask for (set --token or HEADROOM_TOKEN)`,
    );
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
        config.givenAs?.headroom,
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
