/**
 * The host side of one plugin process: a plugin's code runs in a child process of the
 * same deno binary, never in the service or its engine workers, because a Deno Worker
 * cannot contain what a plugin could do there (`Deno.kill` of its own pid, a heap
 * exhaustion that aborts the whole process, an `npm:` import that makes the process ask
 * the registry, FFI through any library a worker may load). The child gets no env, FFI,
 * net, run, write or sys permission, may read only its own file and declared assets,
 * loads no remote module and no npm package that is not cached, has a capped heap, a
 * capped resident memory (off-heap buffers included: `memoryBytes`, read from /proc while
 * it works and after each reply) and an empty environment. Every message it sends is
 * checked (plugin_messages.ts); one that is not part of the protocol ends it. Its exit is
 * noticed at once, with the cause.
 * @module
 */
import { fileURLToPath } from "node:url";
import type { WireTensor } from "../core/pipelines/protocol.ts";
import { type FromPlugin, fromPluginSchema, type ToPlugin } from "./plugin_messages.ts";
import { encodeFrame, readFrames } from "./plugin_wire.ts";
import { processRssBytes } from "./process_figures.ts";
import { SETTINGS } from "../core/config.ts";
import { systemClock, type TimerHandle } from "../core/clock.ts";

/** Heap cap of a plugin process by default (V8's old space, in MiB). */
export const DEFAULT_PLUGIN_HEAP_MIB = 1024;

/** How often a plugin's resident memory is read while it imports, initialises or runs a request. */
const MEMORY_CHECK_BUSY_MS = 100;

/** How often it is read while the plugin is idle (timers of its own could still allocate). */
const MEMORY_CHECK_IDLE_MS = 1_000;

const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(0);

/** The cause a plugin over its memory cap is ended with: the figure, the cap, the setting to raise. */
function overMemoryCause(rssBytes: number, capBytes: number): string {
  const { flag, env } = SETTINGS.pluginMemoryBytes;
  return `held ${mib(rssBytes)} MiB resident, over its ${mib(capBytes)} MiB memory cap ` +
    `(heap and off-heap buffers); raise --${flag} or ${env} if the plugin needs more`;
}

/** Rejects a plugin call whose process is gone (exited, crashed, killed or stopped). */
export class PluginGoneError extends Error {
  override name = "PluginGoneError";
}

/** A plugin's `process` failed; `inputError` when it said the caller's input was wrong. */
export class PluginFailure extends Error {
  override name = "PluginFailure";
  constructor(message: string, readonly inputError: boolean) {
    super(message);
  }
}

/** What a plugin process is started with. */
export interface PluginProcessOptions {
  modelId: string;
  /** The plugin module's file URL. */
  pluginUrl: string;
  /** Its declared assets, by name (absolute paths; the host reads them and sends the bytes). */
  assets: Record<string, string>;
  /** V8 heap cap in MiB (default {@link DEFAULT_PLUGIN_HEAP_MIB}). */
  heapMiB?: number;
  /**
   * Most resident memory the process may hold, in bytes (absent: no cap). Past it the
   * process is ended with {@link overMemoryCause}: a heap cap does not bound the
   * ArrayBuffers a plugin keeps off its heap. Read from /proc, so enforced on Linux only.
   */
  memoryBytes?: number;
  /** How long the import and init may take before the process is killed. */
  startTimeoutMs: number;
}

/** Runs the session once for the plugin (the engine worker's `run` with tensors). */
export type EngineInfer = (
  feeds: Record<string, WireTensor>,
) => Promise<Record<string, WireTensor>>;

const CONFIG = fileURLToPath(new URL("../deno.json", import.meta.url));
const ENTRY = new URL("./plugin_process.ts", import.meta.url).href;
const STDERR_TAIL_BYTES = 8 * 1024;

function env(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

/** The only environment a plugin process gets: where deno's cache is, PATH, nothing else. */
function childEnv(): Record<string, string> {
  const cache = env("DENO_DIR") ??
    `${env("XDG_CACHE_HOME") ?? `${env("HOME") ?? "/root"}/.cache`}/deno`;
  const registry = env("NPM_CONFIG_REGISTRY");
  return {
    DENO_DIR: cache,
    // So that a command resolves and meets the missing run permission by name.
    PATH: env("PATH") ?? "/usr/bin:/bin",
    NO_COLOR: "1",
    DENO_NO_UPDATE_CHECK: "1",
    // Where deno would ask if it asked; with --cached-only it never does.
    ...(registry ? { NPM_CONFIG_REGISTRY: registry } : {}),
  };
}

/** The deno command line of a plugin process. */
export function pluginCommandArgs(options: PluginProcessOptions): string[] {
  const pluginFile = fileURLToPath(options.pluginUrl);
  // A comma would split Deno's list; the host sends asset bytes, so such a path is not needed.
  const read = [pluginFile, ...Object.values(options.assets)].filter((p) => !p.includes(","));
  const main = `import * as plugin from ${JSON.stringify(options.pluginUrl)};\n` +
    `import { servePlugin } from ${JSON.stringify(ENTRY)};\n` +
    `await servePlugin(plugin.default);\n`;
  return [
    "run",
    "--quiet",
    "--no-prompt",
    "--no-remote",
    "--cached-only",
    "--config",
    CONFIG,
    `--v8-flags=--max-old-space-size=${options.heapMiB ?? DEFAULT_PLUGIN_HEAP_MIB}`,
    `--allow-read=${read.join(",")}`,
    `data:application/typescript;base64,${btoa(main)}`,
  ];
}

/** Why a plugin process ended, from its exit status and the last of its stderr. */
function exitCause(status: Deno.CommandStatus, stderr: string, heapMiB: number): string {
  if (/out of memory|heap limit/i.test(stderr)) {
    return `ran out of its ${heapMiB} MiB heap (Fatal JavaScript out of memory)`;
  }
  // NO_COLOR is set: its stderr has no colour codes.
  const lines = stderr.split("\n").map((l) => l.trim()).filter(Boolean);
  const error = lines.find((l) => l.startsWith("error:")) ?? lines.at(-1);
  const how = status.signal ? `was killed by ${status.signal}` : `exited with code ${status.code}`;
  return error ? `${how}: ${error.slice(0, 400)}` : how;
}

/** One running plugin process. */
export class PluginProcess {
  /** Settles once the process is gone, with the cause. Never rejects. */
  readonly exited: Promise<string>;
  readonly #options: PluginProcessOptions;
  readonly #child: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  #writing: Promise<void> = Promise.resolve();
  #gone: string | null = null;
  #killReason: string | null = null;
  #stderr = "";
  /** True once the plugin printed its uncaught error: the stack after it is not echoed. */
  #uncaught = false;
  #ready: PromiseWithResolvers<Extract<FromPlugin, { type: "ready" }>> = Promise.withResolvers();
  #nextId = 1;
  #current: {
    id: number;
    infer: EngineInfer;
    settle: PromiseWithResolvers<unknown>;
  } | null = null;
  #turn: Promise<unknown> = Promise.resolve();
  #probe = false;
  /** True until it said it is ready: an import or init is work, watched like a request. */
  #starting = true;
  #memoryTimer: TimerHandle | null = null;

  private constructor(options: PluginProcessOptions) {
    this.#options = options;
    const child = new Deno.Command(Deno.execPath(), {
      args: pluginCommandArgs(options),
      clearEnv: true,
      env: childEnv(),
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#child = child;
    this.#writer = child.stdin.getWriter();
    this.#ready.promise.catch(() => {});
    this.#watchMemory();
    const stderrDone = this.#readStderr();
    const framesDone = this.#readFrames();
    this.exited = (async () => {
      const status = await child.status;
      await Promise.all([stderrDone, framesDone]);
      const heap = options.heapMiB ?? DEFAULT_PLUGIN_HEAP_MIB;
      const cause = this.#killReason ?? exitCause(status, this.#stderr, heap);
      this.#end(cause);
      return cause;
    })();
  }

  /**
   * Starts the plugin process for `options`: imports the plugin, runs its init with the
   * assets' bytes. Rejects with the cause when it does not say it is ready within
   * `startTimeoutMs` (a hang at import, say), fails, or exits; the process is then gone.
   */
  static async start(options: PluginProcessOptions): Promise<PluginProcess> {
    const assets: Record<string, Uint8Array> = {};
    for (const [name, path] of Object.entries(options.assets)) {
      try {
        assets[name] = await Deno.readFile(path);
      } catch (error) {
        throw new Error(`Cannot read asset "${name}" (${path}): ${(error as Error).message}`);
      }
    }
    const plugin = new PluginProcess(options);
    const timer = setTimeout(
      () =>
        plugin.kill(
          `did not import and initialise within ${options.startTimeoutMs} ms (a plugin that hangs at import, or in init)`,
        ),
      options.startTimeoutMs,
    );
    try {
      plugin.#send({ type: "init", modelId: options.modelId, assets });
      const ready = await Promise.race([
        plugin.#ready.promise,
        plugin.exited.then((cause) => Promise.reject(new PluginGoneError(cause))),
      ]);
      if (!ready.ok) throw new Error(ready.message);
      plugin.#probe = ready.probe;
      return plugin;
    } catch (error) {
      plugin.kill((error as Error).message);
      const cause = await plugin.exited;
      throw new Error(`Plugin ${options.pluginUrl}: ${cause}`);
    } finally {
      clearTimeout(timer);
    }
  }

  /** True when the plugin has a probe input (for the GPU/CPU parity check). */
  get hasProbe(): boolean {
    return this.#probe;
  }

  /** The child's pid (for tests and figures). */
  get pid(): number {
    return this.#child.pid;
  }

  /** Why the process is gone, or null while it runs. */
  get goneReason(): string | null {
    return this.#gone;
  }

  /**
   * Runs the plugin's `process` on `input` (or on its own probe), with `infer` running the
   * session for it. One call at a time. Rejects with a {@link PluginFailure} when the
   * plugin threw, a {@link PluginGoneError} when its process ended.
   */
  process(input: unknown, infer: EngineInfer, probe = false): Promise<unknown> {
    const run = () => {
      if (this.#gone !== null) return Promise.reject(new PluginGoneError(this.#gone));
      const id = this.#nextId++;
      const settle = Promise.withResolvers<unknown>();
      this.#current = { id, infer, settle };
      this.#send(probe ? { type: "process", id, probe: true } : { type: "process", id, input });
      // Busy now: the watch reads its memory at the busy interval from here.
      if (this.#memoryTimer !== null) systemClock.clearTimeout(this.#memoryTimer);
      this.#watchMemory();
      return settle.promise.finally(() => {
        if (this.#current?.id === id) this.#current = null;
      });
    };
    const result = this.#turn.then(run, run);
    this.#turn = result.catch(() => {});
    return result;
  }

  /** Ends the process (SIGKILL) with `reason` as its cause. Safe to call twice. */
  kill(reason: string): void {
    if (this.#gone !== null || this.#killReason !== null) return;
    this.#killReason = reason;
    try {
      this.#child.kill("SIGKILL");
    } catch { /* already exited */ }
  }

  /**
   * Reads the process's resident memory; past the cap it ends the process with the cause
   * and answers true. Without a cap, or off Linux, it answers false.
   */
  #overMemory(): boolean {
    const cap = this.#options.memoryBytes;
    if (cap === undefined || this.#gone !== null) return false;
    const rss = processRssBytes(this.#child.pid);
    if (rss === null || rss <= cap) return false;
    this.kill(overMemoryCause(rss, cap));
    return true;
  }

  /** Checks the memory cap every {@link MEMORY_CHECK_BUSY_MS} while it works, less often idle. */
  #watchMemory(): void {
    if (this.#options.memoryBytes === undefined || this.#gone !== null) return;
    if (this.#overMemory()) return;
    const busy = this.#starting || this.#current !== null;
    // Unref'd: the watch never keeps the service running.
    this.#memoryTimer = systemClock.setTimeout(
      () => this.#watchMemory(),
      busy ? MEMORY_CHECK_BUSY_MS : MEMORY_CHECK_IDLE_MS,
    );
  }

  #send(message: ToPlugin): void {
    let frame: Uint8Array[];
    try {
      frame = encodeFrame(message);
    } catch (error) {
      // An input that cannot be framed is the caller's: fail its call, keep the process.
      const current = this.#current;
      if (message.type === "process" && current?.id === message.id) {
        current.settle.reject(new PluginFailure((error as Error).message, true));
      } else this.kill(`could not be sent a message: ${(error as Error).message}`);
      return;
    }
    // Write failures mean the process is gone; its exit says why.
    this.#writing = this.#writing.then(async () => {
      for (const part of frame) await this.#writer.write(part);
    }).catch(() => {});
  }

  async #readStderr(): Promise<void> {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of this.#child.stderr) {
        const text = decoder.decode(chunk, { stream: true });
        this.#stderr = (this.#stderr + text).slice(-STDERR_TAIL_BYTES);
        for (const line of text.split("\n")) {
          // A plugin's own output is shown; its uncaught error in one line (the cause its
          // pipeline fails with), not Deno's source excerpt and stack after it.
          if (this.#uncaught || !line.trim()) continue;
          if (line.startsWith("error: ")) this.#uncaught = true;
          console.error(`[plugin ${this.#options.modelId}] ${line}`);
        }
      }
    } catch { /* the process ended */ }
  }

  async #readFrames(): Promise<void> {
    try {
      for await (const raw of readFrames(this.#child.stdout)) {
        const parsed = fromPluginSchema.safeParse(raw);
        if (!parsed.success) {
          const issue = parsed.error.issues[0];
          return this.kill(
            `sent a message that is not part of the plugin protocol (${
              issue?.path.join(".") || "message"
            }: ${issue?.message})`,
          );
        }
        this.#dispatch(parsed.data as FromPlugin);
      }
    } catch (error) {
      this.kill(`broke its channel: ${(error as Error).message}`);
    }
  }

  #dispatch(message: FromPlugin): void {
    if (message.type === "ready") {
      this.#starting = false;
      // What it holds once initialised counts like what it holds after a reply.
      if (this.#overMemory()) return;
      return this.#ready.resolve(message);
    }
    const current = this.#current;
    if (message.type === "done") {
      if (current?.id !== message.id) {
        return this.kill(`answered request ${message.id}, which it was not running`);
      }
      // After each reply: a plugin over its cap fails this request with the cause (its exit
      // settles it), not only the next one.
      if (this.#overMemory()) return;
      if (message.ok) current.settle.resolve(message.output);
      else current.settle.reject(new PluginFailure(message.message, message.inputError));
      return;
    }
    if (!current) {
      return this.kill(`asked for a session run (call ${message.call}) outside a request`);
    }
    current.infer(message.feeds).then(
      (outputs) => this.#send({ type: "inferred", call: message.call, ok: true, outputs }),
      (error) =>
        this.#send({
          type: "inferred",
          call: message.call,
          ok: false,
          message: (error as Error).message,
        }),
    );
  }

  #end(cause: string): void {
    if (this.#gone !== null) return;
    this.#gone = cause;
    if (this.#memoryTimer !== null) systemClock.clearTimeout(this.#memoryTimer);
    this.#ready.reject(new PluginGoneError(cause));
    this.#current?.settle.reject(new PluginGoneError(cause));
    this.#current = null;
    this.#writer.close().catch(() => {});
  }
}
