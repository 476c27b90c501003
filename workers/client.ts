/**
 * The main-thread side of one pipeline worker: spawns it with narrowed permissions,
 * numbers requests, matches replies by id, and notices when the worker dies (every
 * pending request then rejects with a {@link WorkerDiedError}).
 *
 * Narrowed worker permissions are an unstable Deno API: the process needs
 * `--unstable-worker-options` (without it Deno exits at `new Worker`), or pass
 * `sandbox: false` to let the worker inherit the process's permissions.
 * @module
 */
import type {
  PipelineSpec,
  RequestKind,
  RequestOf,
  RunInput,
  SessionDevice,
  WireTensor,
  WorkerReply,
  WorkerRequest,
  WorkerStatus,
} from "../core/pipelines/protocol.ts";
import { transferablesOf } from "../core/pipelines/protocol.ts";
import { addonDir } from "./engines/native.ts";
import { prepareGpuEnvironment } from "../core/monitor/gpu_env.ts";

// onnxruntime-web's wasm glue, once loaded on the main thread, sets
// `global.Worker = require("worker_threads").Worker`; keep Deno's own Worker from before that.
const DenoWorker: typeof Worker = globalThis.Worker;

/** Rejects a request whose worker died (crashed, failed to start, or was terminated). */
export class WorkerDiedError extends Error {
  override name = "WorkerDiedError";
}

/** A request of kind `K` as the caller writes it: the client adds the id. */
export type RequestBody<K extends RequestKind = RequestKind> = K extends RequestKind
  ? Omit<RequestOf<K>, "id">
  : never;

/** Options of {@link WorkerClient.start}. */
export interface WorkerClientOptions {
  /** More paths the worker may read (beyond the model, assets, plugin and onnxruntime-web). */
  readPaths?: string[];
  /** Narrow the worker's permissions (default true; needs `--unstable-worker-options`). */
  sandbox?: boolean;
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

function filePath(url: string): string | null {
  return url.startsWith("file:") ? decodeURIComponent(new URL(url).pathname) : null;
}

/** One pipeline worker seen from the main thread. */
export class WorkerClient {
  /** The last status any reply carried. */
  lastStatus: WorkerStatus = EMPTY_STATUS;
  /** Settles when the worker is gone, with the reason. Never rejects. */
  readonly exited: Promise<string>;
  readonly spec: PipelineSpec;

  #worker: Worker;
  #nextId = 1;
  #pending = new Map<number, (reply: WorkerReply | WorkerDiedError) => void>();
  #dead: string | null = null;
  #exitCallbacks: Array<(reason: string) => void> = [];
  #resolveExited!: (reason: string) => void;

  private constructor(spec: PipelineSpec, options: WorkerClientOptions) {
    this.spec = spec;
    this.exited = new Promise((resolve) => this.#resolveExited = resolve);
    const url = new URL("./pipeline_worker.ts", import.meta.url);
    const pluginFile = spec.pluginUrl ? filePath(spec.pluginUrl) : null;
    const native = nativePermissions(spec);
    const read = [
      spec.modelPath,
      ...spec.externalData.map((f) => f.path),
      ...native.read,
      ...Object.values(spec.assets),
      // The plugin's folder, not just its file: its own relative imports need reading too.
      ...(pluginFile ? [pluginFile.slice(0, pluginFile.lastIndexOf("/")) || "/"] : []),
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

  /** Spawns a worker for `spec` and sends `init`; rejects if init fails or the worker dies. */
  static async start(spec: PipelineSpec, opts: WorkerClientOptions = {}): Promise<WorkerClient> {
    const client = new WorkerClient(spec, opts);
    let reply: WorkerReply<"init">;
    try {
      reply = await client.request({ type: "init", spec });
    } catch (error) {
      client.terminate();
      throw error;
    }
    if (!reply.ok) {
      client.terminate();
      throw new Error(
        `Starting pipeline "${spec.modelId}" failed (${reply.error.code}): ${reply.error.message}`,
      );
    }
    return client;
  }

  /** True until the worker dies or is terminated. */
  get alive(): boolean {
    return this.#dead === null;
  }

  /**
   * Sends one request; resolves with the reply of its kind (errors as data), rejects only
   * if the worker dies.
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
      this.#pending.set(
        id,
        // The worker answers each id with the reply of its request's kind.
        (reply) =>
          reply instanceof WorkerDiedError ? reject(reply) : resolve(reply as WorkerReply<K>),
      );
      try {
        this.#worker.postMessage({ ...body, id } as WorkerRequest, transfer);
      } catch (error) {
        this.#pending.delete(id);
        reject(error);
      }
    });
  }

  /** Creates the session on `device` ("gpu" = webgpu EP, "cpu" = the spec's CPU engine). */
  load(device: SessionDevice): Promise<WorkerReply<"load">> {
    return this.request({ type: "load", device });
  }

  /** Runs the session on tensors (their buffers are transferred: the caller loses them) or a plugin payload. */
  run(input: RunInput | Record<string, WireTensor>): Promise<WorkerReply<"run">> {
    const runInput: RunInput =
      "kind" in input && (input.kind === "tensors" || input.kind === "plugin")
        ? input as RunInput
        : { kind: "tensors", tensors: input as Record<string, WireTensor> };
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

  /** Runs the GPU/CPU parity check (the session must be on the GPU). */
  parity(tolerance: number): Promise<WorkerReply<"parity">> {
    return this.request({ type: "parity", tolerance });
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

  /** Stops the worker: pending requests reject with WorkerDiedError. Safe to call twice. */
  terminate(reason = "terminated"): void {
    if (this.#dead !== null) return;
    this.#worker.terminate();
    this.#die(reason);
  }

  #onReply(reply: WorkerReply): void {
    if (reply?.status) this.lastStatus = reply.status;
    const settle = this.#pending.get(reply?.id);
    if (!settle) return;
    this.#pending.delete(reply.id);
    settle(reply);
  }

  #die(reason: string): void {
    if (this.#dead !== null) return;
    this.#dead = reason;
    try {
      this.#worker.terminate();
    } catch { /* already gone */ }
    const error = new WorkerDiedError(`Pipeline "${this.spec.modelId}" worker died: ${reason}`);
    for (const settle of this.#pending.values()) settle(error);
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
