/**
 * The main-thread side of one pipeline: its engine worker, spawned with narrowed
 * permissions and running only Headroom's code, and, for a model with a plugin, the
 * plugin's own process (workers/plugin_host.ts), which calls the engine through this
 * client. It numbers requests, checks every reply against the protocol
 * (workers/reply_check.ts), gives every step a deadline, and notices when the worker or
 * the plugin process dies (every pending request then rejects with a
 * {@link WorkerDiedError} naming the cause; a step past its deadline with a
 * {@link WorkerTimeoutError}).
 *
 * Narrowed worker permissions are an unstable Deno API: the process needs
 * `--unstable-worker-options` (without it Deno exits at `new Worker`), or pass
 * `sandbox: false` to let the worker inherit the process's permissions.
 * @module
 */
import type {
  PipelineSpec,
  PostedReply,
  RequestKind,
  RequestOf,
  RunInput,
  RunOutput,
  SessionDevice,
  WireTensor,
  WorkerReply,
  WorkerRequest,
  WorkerStatus,
} from "../core/pipelines/protocol.ts";
import { transferablesOf, type WorkerError } from "../core/pipelines/protocol.ts";
import { addonDir } from "./engines/native.ts";
import { prepareGpuEnvironment } from "../core/monitor/gpu_env.ts";
import { type EngineInfer, PluginFailure, PluginGoneError, PluginProcess } from "./plugin_host.ts";
import { replyProblem } from "./reply_check.ts";

// onnxruntime-web's wasm glue, once loaded on the main thread, sets
// `global.Worker = require("worker_threads").Worker`; keep Deno's own Worker from before that.
const DenoWorker: typeof Worker = globalThis.Worker;

/** Rejects a request whose worker died (crashed, failed to start, or was terminated). */
export class WorkerDiedError extends Error {
  override name = "WorkerDiedError";
}

/** Rejects a step (start, init, load, move, run, unload) its worker did not finish in time. */
export class WorkerTimeoutError extends WorkerDiedError {
  override name = "WorkerTimeoutError";
}

/** How long one worker step may take by default before the worker is replaced. */
export const DEFAULT_STEP_TIMEOUT_MS = 120_000;

/** A request of kind `K` as the caller writes it: the client adds the id. */
export type RequestBody<K extends RequestKind = RequestKind> = K extends RequestKind
  ? Omit<RequestOf<K>, "id">
  : never;

/** Options of {@link WorkerClient.start}. */
export interface WorkerClientOptions {
  /** More paths the worker may read (beyond the model and onnxruntime-web). */
  readPaths?: string[];
  /** Narrow the worker's permissions (default true; needs `--unstable-worker-options`). */
  sandbox?: boolean;
  /**
   * The deadline of each step: the worker's start and init, the plugin's import and init,
   * load, offload, rehydrate, unload, parity, and a run (default {@link DEFAULT_STEP_TIMEOUT_MS}).
   */
  stepTimeoutMs?: number;
  /** Heap cap of the plugin process, in MiB (default: plugin_host.ts's). */
  pluginHeapMiB?: number;
  /** Resident-memory cap of the plugin process, in bytes (default: none). */
  pluginMemoryBytes?: number;
}

const EMPTY_STATUS: WorkerStatus = {
  device: "none",
  gpuBuffers: 0,
  gpuBytes: 0,
  gpuPeakBytes: 0,
  rssBytes: 0,
  inputs: [],
  outputs: [],
  build: "none",
  engine: "none",
  ramBytes: 0,
};

/** Directories onnxruntime-web reads its own wasm and glue from (the project's node_modules). */
function runtimeReadPaths(): string[] {
  const paths = [new URL("../node_modules", import.meta.url)];
  return paths.filter((url) => {
    try {
      return Deno.statSync(url).isDirectory;
    } catch {
      return false;
    }
  }).map((url) => decodeURIComponent(url.pathname));
}

/**
 * What the native engine needs beyond the model: read access to onnxruntime-node's
 * package (and its folder's siblings, for onnxruntime-common) and FFI access to the
 * addon's folder only, by real path (Deno checks the resolved path).
 */
function nativePermissions(spec: PipelineSpec): { read: string[]; ffi: string[] } {
  if (spec.cpuEngine !== "native" || !spec.ortNodeDir) return { read: [], ffi: [] };
  let real = spec.ortNodeDir;
  try {
    real = Deno.realPathSync(spec.ortNodeDir);
  } catch { /* a missing folder: the worker says so when it loads */ }
  const parent = (p: string) => p.slice(0, p.lastIndexOf("/")) || "/";
  return {
    read: [spec.ortNodeDir, parent(spec.ortNodeDir), real, parent(real)],
    ffi: [addonDir(real)],
  };
}

/** A request waiting for its reply: its kind (what the reply must be) and how to settle it. */
interface Pending {
  kind: RequestKind;
  settle: (reply: WorkerReply | WorkerDiedError) => void;
}

/** Copies of tensors (their own buffers), for a record that outlives a transfer. */
function copyTensors(tensors: Record<string, WireTensor>): Record<string, WireTensor> {
  const copy: Record<string, WireTensor> = {};
  for (const [name, t] of Object.entries(tensors)) copy[name] = { ...t, data: t.data.slice() };
  return copy;
}

/** One pipeline worker seen from the main thread. */
export class WorkerClient {
  /** The last status any reply carried. */
  lastStatus: WorkerStatus = EMPTY_STATUS;
  /** Settles when the worker is gone, with the reason. Never rejects. */
  readonly exited: Promise<string>;
  readonly spec: PipelineSpec;

  #worker: Worker;
  #plugin: PluginProcess | null = null;
  #stepMs: number;
  #nextId = 1;
  #pending = new Map<number, Pending>();
  #dead: string | null = null;
  #deathError: WorkerDiedError | null = null;
  #exitCallbacks: Array<(reason: string) => void> = [];
  #resolveExited!: (reason: string) => void;

  private constructor(spec: PipelineSpec, options: WorkerClientOptions) {
    this.spec = spec;
    this.#stepMs = options.stepTimeoutMs ?? DEFAULT_STEP_TIMEOUT_MS;
    this.exited = new Promise((resolve) => this.#resolveExited = resolve);
    const url = new URL("./pipeline_worker.ts", import.meta.url);
    const native = nativePermissions(spec);
    const read = [
      spec.modelPath,
      ...spec.externalData.map((f) => f.path),
      ...native.read,
      ...runtimeReadPaths(),
      ...(options.readPaths ?? []),
    ];
    const workerOptions = {
      type: "module",
      name: `pipeline:${spec.modelId}`,
      ...(options.sandbox === false ? {} : {
        deno: {
          permissions: {
            read,
            net: false,
            env: false,
            run: false,
            write: false,
            // Never libc: with it a plugin could dlopen it and call system(). The host
            // trims the heap after each move (malloc_trim is process-wide).
            ffi: native.ffi.length > 0 ? native.ffi : false,
            sys: false,
            import: false,
          },
        },
      }),
    } as WorkerOptions;
    if (typeof DenoWorker?.prototype?.addEventListener !== "function") {
      throw new Error(
        "globalThis.Worker is not Deno's Web Worker (onnxruntime-web replaces it with node's " +
          "worker_threads.Worker when it loads on the main thread): import workers/client.ts first",
      );
    }
    prepareGpuEnvironment(); // before the worker's first adapter request (Mesa's stderr line)
    this.#worker = new DenoWorker(url, workerOptions);
    this.#worker.addEventListener("message", (event) => this.#onReply(event.data));
    this.#worker.addEventListener("error", (event) => {
      event.preventDefault(); // the pipeline is marked failed; the process keeps running
      this.#die(`worker error: ${event.message ?? "unknown error"}`);
    });
    this.#worker.addEventListener("messageerror", () => {
      this.#die("worker messageerror: a reply could not be deserialized");
    });
  }

  /**
   * Spawns a worker for `spec` and sends `init`, and starts the plugin's process when
   * the spec names a plugin; rejects if either fails, dies or is not ready in time.
   */
  static async start(spec: PipelineSpec, opts: WorkerClientOptions = {}): Promise<WorkerClient> {
    const client = new WorkerClient(spec, opts);
    const plugin = spec.pluginUrl
      ? PluginProcess.start({
        modelId: spec.modelId,
        pluginUrl: spec.pluginUrl,
        assets: spec.assets,
        heapMiB: opts.pluginHeapMiB,
        memoryBytes: opts.pluginMemoryBytes,
        startTimeoutMs: client.#stepMs,
      })
      : null;
    plugin?.catch(() => {}); // awaited below; a failure while init runs is reported there
    try {
      const reply = await client.request({ type: "init", spec });
      if (!reply.ok) {
        throw new Error(
          `Starting pipeline "${spec.modelId}" failed (${reply.error.code}): ${reply.error.message}`,
        );
      }
      if (plugin) {
        client.#plugin = await plugin;
        client.#plugin.exited.then((cause) => client.#die(`its plugin process ${cause}`));
      }
    } catch (error) {
      client.terminate();
      plugin?.then((p) => p.kill("its worker did not start"), () => {});
      throw error;
    }
    return client;
  }

  /** True until the worker dies or is terminated. */
  get alive(): boolean {
    return this.#dead === null;
  }

  /**
   * Sends one request; resolves with the reply of its kind (errors as data), checked
   * against the protocol; rejects if the worker dies or the step passes its deadline
   * (the worker is then ended).
   */
  request<K extends RequestKind>(
    body: RequestBody<K>,
    transfer: Transferable[] = [],
  ): Promise<WorkerReply<K>> {
    if (this.#dead !== null) {
      return Promise.reject(
        new WorkerDiedError(`Pipeline "${this.spec.modelId}" worker is gone: ${this.#dead}`),
      );
    }
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => this.#timeOut(body.type, this.#stepMs),
        this.#stepMs,
      );
      this.#pending.set(id, {
        kind: body.type,
        // The reply was checked as one of this request's kind.
        settle: (reply) => {
          clearTimeout(timer);
          reply instanceof WorkerDiedError ? reject(reply) : resolve(reply as WorkerReply<K>);
        },
      });
      try {
        this.#worker.postMessage({ ...body, id } as WorkerRequest, transfer);
      } catch (error) {
        clearTimeout(timer);
        this.#pending.delete(id);
        reject(error);
      }
    });
  }

  /** Creates the session on `device` ("gpu" = webgpu EP, "cpu" = the spec's CPU engine). */
  load(device: SessionDevice): Promise<WorkerReply<"load">> {
    return this.request({ type: "load", device });
  }

  /**
   * Runs the session on tensors (their buffers are transferred: the caller loses them), or
   * a plugin payload through the plugin's process.
   */
  run(input: RunInput | Record<string, WireTensor>): Promise<WorkerReply<"run">> {
    const runInput: RunInput =
      "kind" in input && (input.kind === "tensors" || input.kind === "plugin")
        ? input as RunInput
        : { kind: "tensors", tensors: input as Record<string, WireTensor> };
    if (runInput.kind === "plugin" && this.#plugin) return this.#runPlugin(runInput.payload);
    const transfer = runInput.kind === "tensors" ? transferablesOf(runInput.tensors) : [];
    return this.request({ type: "run", input: runInput }, transfer);
  }

  /** GPU → CPU: frees every GPU buffer of this pipeline, then serves on the CPU engine. */
  offload(): Promise<WorkerReply<"offload">> {
    return this.request({ type: "offload" });
  }

  /** CPU → GPU: re-creates the webgpu session (stays on the CPU if that fails). */
  rehydrate(): Promise<WorkerReply<"rehydrate">> {
    return this.request({ type: "rehydrate" });
  }

  /** Releases the session; the worker stays for another `load`. */
  unload(): Promise<WorkerReply<"unload">> {
    return this.request({ type: "unload" });
  }

  /**
   * Runs the GPU/CPU parity check (the session must be on the GPU). For a plugin with a
   * probe input, the session inputs the plugin makes of it are recorded first (on the
   * GPU session) and the worker compares both engines on those.
   */
  async parity(tolerance: number): Promise<WorkerReply<"parity">> {
    const plugin = this.#plugin;
    if (!plugin?.hasProbe) return this.request({ type: "parity", tolerance });
    const probe: Array<Record<string, WireTensor>> = [];
    const start = performance.now();
    const outcome = await this.#pluginCall(plugin, undefined, true, (feeds) => {
      probe.push(copyTensors(feeds));
      return feeds;
    });
    if (!outcome.ok) {
      return { ...outcome, type: "parity", error: outcome.error, ms: performance.now() - start };
    }
    return this.request(
      { type: "parity", tolerance, probe },
      probe.flatMap((feeds) => transferablesOf(feeds)),
    );
  }

  /** Asks for the current status. */
  status(): Promise<WorkerReply<"status">> {
    return this.request({ type: "status" });
  }

  /** Calls `cb` once with the reason when the worker dies (at once if it already has). */
  onExit(cb: (reason: string) => void): void {
    if (this.#dead !== null) cb(this.#dead);
    else this.#exitCallbacks.push(cb);
  }

  /** Stops the worker (and the plugin's process): pending requests reject with WorkerDiedError. Safe to call twice. */
  terminate(reason = "terminated"): void {
    if (this.#dead !== null) return;
    this.#worker.terminate();
    this.#die(reason);
  }

  /** The plugin process's pid, or null without a plugin (for tests and figures). */
  get pluginPid(): number | null {
    return this.#plugin?.pid ?? null;
  }

  /** A plugin payload through the plugin's process, as a `run` reply. */
  async #runPlugin(payload: unknown): Promise<WorkerReply<"run">> {
    const start = performance.now();
    const outcome = await this.#pluginCall(this.#plugin!, payload, false, (feeds) => feeds);
    const ms = performance.now() - start;
    if (!outcome.ok) return { ...outcome, type: "run", ms };
    return {
      id: 0,
      type: "run",
      ok: true,
      status: this.lastStatus,
      ms,
      output: { kind: "plugin", payload: outcome.output },
    };
  }

  /**
   * One `process` call in the plugin's process, its session runs sent to the engine
   * worker (each `before` sending, which may record them). Past the step deadline the
   * pipeline ends; a plugin that throws is an error as data: bad_input when it said so,
   * the engine's own error when a session run failed (an oom stays an oom).
   */
  async #pluginCall(
    plugin: PluginProcess,
    payload: unknown,
    probe: boolean,
    before: (feeds: Record<string, WireTensor>) => Record<string, WireTensor>,
  ): Promise<
    | { ok: true; output: unknown }
    | { ok: false; id: number; status: WorkerStatus; error: WorkerError }
  > {
    let engineError: WorkerError | null = null;
    const infer: EngineInfer = async (feeds) => {
      const sent = before(feeds);
      const reply = await this.request<"run">(
        { type: "run", input: { kind: "tensors", tensors: sent } },
        transferablesOf(sent),
      );
      if (!reply.ok) {
        engineError = reply.error;
        throw new Error(reply.error.message);
      }
      return (reply.output as Extract<RunOutput, { kind: "tensors" }>).tensors;
    };
    const timer = setTimeout(() => this.#timeOut("run", this.#stepMs), this.#stepMs);
    try {
      return { ok: true, output: await plugin.process(payload, infer, probe) };
    } catch (error) {
      if (error instanceof PluginGoneError) this.#die(`its plugin process ${error.message}`);
      if (this.#deathError) throw this.#deathError;
      if (!(error instanceof PluginFailure)) throw error;
      const failed = engineError as WorkerError | null;
      const code = error.inputError ? "bad_input" : failed?.code ?? "run_failed";
      const message = error.inputError || !failed
        ? (error.inputError ? error.message : `The plugin failed: ${error.message}`)
        : failed.message;
      return { ok: false, id: 0, status: this.lastStatus, error: { code, message } };
    } finally {
      clearTimeout(timer);
    }
  }

  #timeOut(kind: string, ms: number): void {
    this.#die(
      `did not finish ${kind} within ${ms} ms; it was stopped and the next request starts a fresh one`,
      true,
    );
  }

  #onReply(raw: PostedReply): void {
    const id = (raw as { id?: unknown } | null)?.id;
    const pending = typeof id === "number" ? this.#pending.get(id) : undefined;
    if (!pending) {
      return this.#die(
        `answered request ${
          JSON.stringify(id)
        }, which it was not sent or had answered; a worker that forges replies is stopped`,
      );
    }
    const problem = replyProblem(raw, pending.kind);
    if (problem) return this.#die(`sent an invalid ${pending.kind} reply (${problem})`);
    // A run reply without a status kept the last one (PostedReply): every reply past here has one.
    const reply = ("status" in raw ? raw : { ...raw, status: this.lastStatus }) as WorkerReply;
    this.lastStatus = reply.status;
    this.#pending.delete(reply.id);
    pending.settle(reply);
  }

  #die(reason: string, timedOut = false): void {
    if (this.#dead !== null) return;
    this.#dead = reason;
    try {
      this.#worker.terminate();
    } catch { /* already gone */ }
    this.#plugin?.kill(`its pipeline ended (${reason})`);
    const message = `Pipeline "${this.spec.modelId}" worker died: ${reason}`;
    const error = timedOut ? new WorkerTimeoutError(message) : new WorkerDiedError(message);
    this.#deathError = error;
    for (const { settle } of this.#pending.values()) settle(error);
    this.#pending.clear();
    this.lastStatus = { ...this.lastStatus, device: "none", gpuBuffers: 0, gpuBytes: 0 };
    for (const cb of this.#exitCallbacks.splice(0)) {
      try {
        cb(reason);
      } catch (error) {
        console.error("WorkerClient onExit callback failed:", error);
      }
    }
    this.#resolveExited(reason);
  }
}
