/**
 * The PipelineManager: the worker host ({@link PipelineHost}) that the Scheduler drives.
 * It owns one worker per pipeline and carries out transitions when told: load, run,
 * offload (GPU → CPU), rehydrate (CPU → GPU), unload. It decides nothing about
 * placement. Each pipeline's operations pass through its own queue, so a request that
 * arrives during a transition waits for it; a request whose client left is dropped from
 * it. A worker that dies (or is replaced when stuck) marks its pipeline `failed`; the
 * next request starts a fresh one. Every transition is measured and logged.
 * @module
 */
import type { Catalog, CatalogModel } from "../core/models/catalog.ts";
import type { EventLog } from "../core/events.ts";
import type {
  CpuEngineReport,
  GpuMismatch,
  ModelReport,
  PipelineState,
  SessionEngineName,
  TransitionFigures,
} from "../core/types.ts";
import type { ProfileStore } from "../core/store/profiles.ts";
import type {
  ParityResult,
  RunInput,
  SessionDevice,
  WorkerReply,
  WorkerStatus,
} from "../core/pipelines/protocol.ts";
import { WorkerClient, type WorkerClientOptions, WorkerDiedError } from "./client.ts";
import type { PipelineSpec } from "../core/pipelines/protocol.ts";
import { PipelineError } from "../core/pipelines/errors.ts";
import { QueueAbortedError, SerialQueue } from "../core/serial_queue.ts";
import { ModelFileError, type OnnxFileInfo, scanOnnxFile } from "../core/models/external_data.ts";
import { engineLimit } from "../core/models/limits.ts";
import { libcPath, trimHeap } from "../ffi/libc.ts";
import type {
  HostRunOptions,
  HostRunResult,
  HostTransition,
  HostView,
  PipelineHost,
} from "../core/placement/host.ts";

/** The parts of a worker client the manager uses (a real WorkerClient, or a double in tests). */
export type WorkerHandle = Pick<
  WorkerClient,
  | "lastStatus"
  | "alive"
  | "exited"
  | "load"
  | "run"
  | "offload"
  | "rehydrate"
  | "unload"
  | "parity"
  | "onExit"
  | "terminate"
>;

/** Starts one worker for a pipeline. */
export type WorkerStarter = (
  spec: PipelineSpec,
  options: WorkerClientOptions,
) => Promise<WorkerHandle>;

/** How the manager is set up. */
export interface PipelineManagerOptions {
  catalog: Catalog;
  events: EventLog;
  /** Whether pipelines load on the GPU (webgpu EP) by default; false = CPU (wasm) only. */
  gpuAvailable: boolean;
  /** A fresh reading of device-used bytes (NVML), or null where no driver tells it. */
  deviceUsedBytes?: () => number | null;
  /** Starts workers (default: real Web Workers through WorkerClient.start). */
  startWorker?: WorkerStarter;
  /**
   * Reads a model's files before its worker starts (default: scanOnnxFile, which checks
   * the graph and finds its external data); worker doubles that load no file replace it.
   */
  scanModelFile?: (path: string) => Promise<OnnxFileInfo>;
  /** wasm threads per worker (the WebGPU build only works with 1). */
  numThreads?: number;
  /** Narrow each worker's Deno permissions (default true). */
  sandbox?: boolean;
  /** Where measured figures are saved (each transition waits for KV's acknowledgement). */
  profiles?: ProfileStore;
  /**
   * Largest GPU/CPU output difference the parity check accepts (default 1e-3); null
   * turns the check off.
   */
  parityTolerance?: number | null;
  /** The CPU engine (chosen at start, see workers/engines/choose.ts); default: wasm. */
  cpuEngine?: CpuEngineReport;
  /**
   * Above this many model bytes, the parity check runs at the first offload instead of
   * creating a CPU session of its own at the first GPU load (default {@link PARITY_AT_LOAD_MAX_BYTES}).
   */
  parityAtLoadMaxBytes?: number;
}

/**
 * The parity rule's size line: up to 256 MiB the check creates a temporary CPU session at
 * the first GPU load (a small, short-lived second copy); above, it waits for the first
 * offload, where the CPU session is created anyway, so a big model is never held twice for it.
 */
export const PARITY_AT_LOAD_MAX_BYTES = 256 * 2 ** 20;

/** Default tolerance of the parity check: PaddleOCR det agrees within 3e-5, Silero VAD v5 is off by 0.035. */
export const DEFAULT_PARITY_TOLERANCE = 1e-3;

/** One pipeline's record. */
interface Pipeline {
  model: CatalogModel;
  state: PipelineState;
  client: WorkerHandle | null;
  status: WorkerStatus | null;
  error: string | null;
  lastTransition: TransitionFigures | null;
  /** This pipeline's operations, one at a time. */
  queue: SerialQueue;
  /** Tracked GPU bytes last counted into the manager's running sum. */
  counted: number;
  /** Why its GPU memory was not fully given back after a release, or null. */
  leak: string | null;
  gpuMismatch: GpuMismatch | null;
  /** True once the parity check ran (it runs the first time the model is on the GPU). */
  parityChecked: boolean;
  /** The model's files as last scanned (graph + external data), or null before the first load. */
  files: OnnxFileInfo | null;
}

/** Owns the pipeline workers; the Scheduler tells it what to move. */
export class PipelineManager implements PipelineHost {
  readonly #catalog: Catalog;
  readonly #events: EventLog;
  readonly #options: PipelineManagerOptions;
  readonly #pipelines = new Map<string, Pipeline>();
  readonly #gpuSessions = new SerialQueue();
  #trackedTotal = 0;

  constructor(options: PipelineManagerOptions) {
    this.#catalog = options.catalog;
    this.#events = options.events;
    this.#options = options;
    for (const model of options.catalog.list()) {
      this.#pipelines.set(model.id, {
        model,
        state: "unloaded",
        client: null,
        status: null,
        error: null,
        lastTransition: null,
        queue: new SerialQueue(),
        counted: 0,
        leak: null,
        gpuMismatch: null,
        parityChecked: false,
        files: null,
      });
    }
  }

  /** Where pipelines load when nothing says otherwise. */
  get defaultDevice(): SessionDevice {
    return this.#options.gpuAvailable ? "gpu" : "cpu";
  }

  /** Every pipeline id, in catalog order. */
  ids(): string[] {
    return [...this.#pipelines.keys()];
  }

  /** One pipeline's live view by a map lookup (the scheduler's per-request path). */
  view(id: string): HostView | undefined {
    const p = this.#pipelines.get(id);
    if (!p) return undefined;
    return {
      id,
      state: p.state,
      placement: placementOf(p.state),
      gpuBytes: p.client?.alive ? p.client.lastStatus.gpuBytes : 0,
      gpuMismatch: p.gpuMismatch !== null,
    };
  }

  /** Every pipeline's state, in catalog order. */
  list(): ModelReport[] {
    return [...this.#pipelines.values()].map((p) => this.#report(p));
  }

  /** One pipeline's state; throws unknown_model for an id not in the catalog. */
  get(id: string): ModelReport {
    return this.#report(this.#pipeline(id));
  }

  /** One pipeline for the API (the scheduler adds its record's fields). */
  report(id: string): ModelReport {
    return this.get(id);
  }

  /** Current tracked figures of one pipeline (for the budget's estimates). */
  liveFigures(id: string): { onGpu: boolean; gpuBytes: number; gpuPeakBytes: number } {
    const p = this.#pipeline(id);
    const status = p.client?.alive ? p.client.lastStatus : null;
    return {
      onGpu: placementOf(p.state) === "gpu",
      gpuBytes: status?.gpuBytes ?? 0,
      gpuPeakBytes: status?.gpuPeakBytes ?? 0,
    };
  }

  /** Live GPU bytes tracked across every worker (a running sum, updated on every reply). */
  trackedBytes(): number {
    return this.#trackedTotal;
  }

  /** Loads the pipeline on `device` (moving it if it is loaded on the other one). */
  load(id: string, device: SessionDevice = this.defaultDevice): Promise<HostTransition> {
    const pipeline = this.#pipeline(id);
    return pipeline.queue.run(() => this.#place(pipeline, device));
  }

  /** GPU → CPU: frees the pipeline's GPU buffers; it keeps serving on the CPU. */
  offload(id: string): Promise<HostTransition> {
    const pipeline = this.#pipeline(id);
    return pipeline.queue.run(async () => {
      if (pipeline.state === "cpu") return { kind: "none", placement: "cpu", releasedBytes: 0 };
      if (pipeline.state !== "gpu") {
        throw new PipelineError(
          "not_loaded",
          `Pipeline "${id}" is ${pipeline.state}, not on the GPU: nothing to offload`,
        );
      }
      return await this.#place(pipeline, "cpu");
    });
  }

  /** Releases the session and ends the worker (its memory goes back to the system). */
  unload(id: string): Promise<HostTransition> {
    const pipeline = this.#pipeline(id);
    return pipeline.queue.run(() => this.#unload(pipeline));
  }

  /**
   * Runs a loaded pipeline where it is (not_loaded when it is not). Waits for any
   * transition; dropped from the queue when `signal` fires first; past `deadline` while
   * running, the worker is replaced and the run answers timeout.
   */
  run(id: string, input: RunInput, options: HostRunOptions = {}): Promise<HostRunResult> {
    const pipeline = this.#pipeline(id);
    return pipeline.queue.run(async () => {
      if ((pipeline.state !== "gpu" && pipeline.state !== "cpu") || !pipeline.client?.alive) {
        throw new PipelineError(
          "not_loaded",
          `Pipeline "${id}" is ${pipeline.state}: load it before running it`,
        );
      }
      const client = pipeline.client;
      const reply = await this.#call(
        pipeline,
        () => this.#withDeadline(pipeline, client.run(input), options.deadline),
      );
      if (!reply.ok) {
        const code = reply.error.code === "bad_input"
          ? "bad_input"
          : reply.error.code === "oom"
          ? "oom"
          : "run_failed";
        throw new PipelineError(code, `Pipeline "${id}": ${reply.error.message}`);
      }
      return {
        output: reply.output!,
        ms: reply.ms,
        device: client.lastStatus.device as SessionDevice,
      };
    }, options.signal);
  }

  /** Ends a pipeline's worker at once, as a crash would (in-flight requests fail with 503). */
  kill(id: string, reason = "killed"): void {
    const pipeline = this.#pipeline(id);
    pipeline.client?.terminate(reason);
  }

  /** Replaces a stuck worker: ended now, the pipeline marked failed; the next use starts a fresh one. */
  replace(id: string, reason: string): void {
    this.kill(id, reason);
  }

  /** Races a worker reply with the request's deadline: past it, the worker is replaced. */
  #withDeadline(
    pipeline: Pipeline,
    reply: Promise<WorkerReply>,
    deadline: AbortSignal | undefined,
  ): Promise<WorkerReply> {
    if (!deadline) return reply;
    return new Promise<WorkerReply>((resolve, reject) => {
      const onDeadline = () => {
        const reason = deadline.reason instanceof Error ? deadline.reason.message : "deadline";
        this.replace(pipeline.model.id, `stuck past the request timeout (${reason})`);
        reject(deadline.reason);
      };
      if (deadline.aborted) return onDeadline();
      deadline.addEventListener("abort", onDeadline, { once: true });
      reply.then(resolve, reject).finally(() => deadline.removeEventListener("abort", onDeadline));
    });
  }

  /** Ends every worker. */
  close(): void {
    for (const pipeline of this.#pipelines.values()) {
      const client = pipeline.client;
      pipeline.client = null;
      client?.terminate("service stopped");
    }
  }

  #pipeline(id: string): Pipeline {
    const pipeline = this.#pipelines.get(id);
    if (!pipeline) {
      throw new PipelineError(
        "unknown_model",
        `Unknown model "${id}": expected one of ${this.#catalog.ids().join(", ")}`,
      );
    }
    return pipeline;
  }

  /**
   * GPU sessions are created one at a time across all pipelines: two at once race for
   * the same free memory (a transient peak neither load alone would reach), and on the
   * software adapter concurrent shader compilation in several workers was seen to stall
   * for a minute.
   */
  #oneGpuSessionAtATime<T>(op: () => Promise<T>): Promise<T> {
    return this.#gpuSessions.run(op);
  }

  /** Keeps the running sum of tracked bytes in step with this pipeline's worker. */
  #recount(pipeline: Pipeline): void {
    const now = pipeline.client?.alive ? pipeline.client.lastStatus.gpuBytes : 0;
    this.#trackedTotal += now - pipeline.counted;
    pipeline.counted = now;
  }

  /** Sends a request; a dead worker becomes a worker_died PipelineError (503). */
  async #call(pipeline: Pipeline, send: () => Promise<WorkerReply>): Promise<WorkerReply> {
    try {
      const reply = await send();
      pipeline.status = reply.status;
      this.#recount(pipeline);
      return reply;
    } catch (error) {
      this.#recount(pipeline);
      if (error instanceof PipelineError || error instanceof QueueAbortedError) throw error;
      if (error instanceof WorkerDiedError) {
        throw new PipelineError(
          "worker_died",
          `${error.message}. The request was not completed; the next request starts a fresh worker.`,
        );
      }
      // postMessage could not clone the input (e.g. JSON nested thousands deep): the
      // caller's input is at fault, not the worker, which never saw it.
      if (
        error instanceof RangeError ||
        (error instanceof DOMException && error.name === "DataCloneError")
      ) {
        throw new PipelineError(
          "bad_input",
          `Pipeline "${pipeline.model.id}": the input cannot be passed to its worker (${error.message}); send a flatter payload`,
        );
      }
      throw error;
    }
  }

  /** The CPU engine in use and why, for the reports (null when none was chosen: wasm). */
  get cpuEngineReport(): CpuEngineReport | null {
    return this.#options.cpuEngine ?? null;
  }

  /** The CPU engine pipelines use. */
  get cpuEngine(): "native" | "wasm" {
    return this.#options.cpuEngine?.engine ?? "wasm";
  }

  /**
   * The model's files (generated first for a synthetic model), scanned for external data
   * and checked: a corrupt file or missing external data is a bad_model error (422).
   * Rescanned whenever a new worker starts.
   */
  async #modelFiles(pipeline: Pipeline): Promise<OnnxFileInfo> {
    if (pipeline.files && pipeline.client?.alive) return pipeline.files;
    const model = pipeline.model;
    let modelPath: string;
    try {
      modelPath = await this.#catalog.materialize(model);
    } catch (error) {
      throw new PipelineError(
        "load_failed",
        `Model "${model.id}": cannot prepare its file: ${(error as Error).message}`,
      );
    }
    try {
      pipeline.files = await (this.#options.scanModelFile ?? scanOnnxFile)(modelPath);
    } catch (error) {
      if (error instanceof ModelFileError) {
        const code = error.kind === "too_large" ? "model_too_large" : "bad_model";
        throw new PipelineError(code, `Model "${model.id}": ${error.message}`);
      }
      throw new PipelineError(
        "load_failed",
        `Model "${model.id}": cannot read ${modelPath}: ${(error as Error).message}`,
      );
    }
    return pipeline.files;
  }

  /** Starts the worker if there is none (or it died). */
  async #ensureWorker(pipeline: Pipeline): Promise<WorkerHandle> {
    if (pipeline.client?.alive) return pipeline.client;
    const model = pipeline.model;
    const files = await this.#modelFiles(pipeline);
    const engine = this.#options.cpuEngine;
    let client: WorkerHandle;
    const start = this.#options.startWorker ?? WorkerClient.start;
    try {
      client = await start({
        modelId: model.id,
        modelPath: files.path,
        externalData: files.externalData.map(({ location, path }) => ({ location, path })),
        modelBytes: files.totalBytes,
        cpuEngine: this.cpuEngine,
        ortNodeDir: engine?.ortNodeDir ?? null,
        cpuThreads: engine?.threads ?? 1,
        libcPath: libcPath(),
        pluginUrl: model.pluginUrl,
        assets: model.assets,
        numThreads: this.#options.numThreads ?? 1,
        parityAtLoadMaxBytes: this.#options.parityAtLoadMaxBytes ?? PARITY_AT_LOAD_MAX_BYTES,
      }, { sandbox: this.#options.sandbox ?? true });
    } catch (error) {
      throw new PipelineError("load_failed", `Model "${model.id}": ${(error as Error).message}`);
    }
    pipeline.client = client;
    client.onExit((reason) => {
      if (pipeline.client !== client) return; // ended on purpose (unload, restart)
      pipeline.client = null;
      this.#recount(pipeline);
      pipeline.state = "failed";
      pipeline.error = `Worker died: ${reason}`;
      this.#events.emit({
        kind: "failure",
        pipeline: model.id,
        message: `${model.id} worker died (${reason}); the next request starts a fresh worker`,
      });
    });
    return client;
  }

  /** Brings the pipeline to `device`: a fresh load, an offload or a rehydrate, measured. */
  async #place(pipeline: Pipeline, device: SessionDevice): Promise<HostTransition> {
    if (pipeline.state === device && pipeline.client?.alive) {
      return { kind: "none", placement: device, releasedBytes: 0 };
    }
    const id = pipeline.model.id;
    const loaded = (pipeline.state === "gpu" || pipeline.state === "cpu") && pipeline.client?.alive;
    const kind = !loaded ? `load:${device}` : device === "cpu" ? "offload" : "rehydrate";
    const before = pipeline.state;
    const gpuBytesBefore = loaded ? pipeline.client!.lastStatus.gpuBytes : 0;
    const peakBefore = loaded ? pipeline.client!.lastStatus.gpuPeakBytes : 0;
    pipeline.state = !loaded ? "loading" : device === "cpu" ? "offloading" : "rehydrating";
    const measure = this.#startMeasure();
    let reply: WorkerReply;
    try {
      const limit = engineLimit(
        await this.#modelFiles(pipeline),
        device === "gpu" ? "webgpu" : this.cpuEngine,
      );
      if (limit) throw new PipelineError("model_too_large", `Model "${id}": ${limit}`);
      const client = await this.#ensureWorker(pipeline);
      const move = () =>
        this.#call(
          pipeline,
          () =>
            !loaded
              ? client.load(device)
              : device === "cpu"
              ? client.offload()
              : client.rehydrate(),
        );
      reply = device === "gpu" ? await this.#oneGpuSessionAtATime(move) : await move();
    } catch (error) {
      // A model refused before any engine saw it (too big, corrupt) stays where it was.
      const refused = error instanceof PipelineError &&
        (error.code === "model_too_large" || error.code === "bad_model");
      pipeline.state = pipeline.client?.alive || refused ? before : "failed";
      pipeline.error = (error as Error).message;
      this.#events.emit({
        kind: "info",
        pipeline: id,
        message: `${id}: ${kind} failed (${pipeline.error})`,
        attempt: kind,
      });
      throw error;
    }
    if (!reply.ok) {
      const reason = `${reply.error.code}: ${reply.error.message}`;
      const deviceNow = reply.status.device;
      pipeline.state = deviceNow === "none"
        ? (before === "failed" ? "failed" : "unloaded")
        : deviceNow;
      pipeline.error = reason;
      // "info": a "failure" event means a worker died; this one only failed to move.
      this.#events.emit({
        kind: "info",
        pipeline: id,
        message: `${id}: ${kind} failed (${reason})`,
        attempt: kind,
      });
      const code = reply.error.code === "no_webgpu"
        ? "no_webgpu"
        : reply.error.code === "oom"
        ? "oom"
        : "load_failed";
      throw new PipelineError(code, `Pipeline "${id}": ${kind} failed: ${reply.error.message}`);
    }
    pipeline.state = reply.status.device === "none" ? "unloaded" : reply.status.device;
    pipeline.error = null;
    // A move released a session: hand its freed heap back to the system now, or RSS keeps
    // a big model's weights long after they are gone.
    if (loaded) await trimHeap();
    const figures = measure.done(kind, reply);
    pipeline.lastTransition = figures;
    this.#events.emit({
      kind: "transition",
      pipeline: id,
      message: `${id}: ${kind} in ${
        figures.ms.toFixed(0)
      } ms, ${figures.gpuBytes} GPU bytes tracked`,
      figures,
      bytes: figures.gpuBytes,
      reason: kind,
    });
    await this.#options.profiles?.recordTransition(
      id,
      figures,
      Math.max(peakBefore, reply.status.gpuPeakBytes),
    );
    if (kind === "offload" && reply.parity) {
      pipeline.parityChecked = true;
      await this.#applyParity(pipeline, reply.parity, false);
    }
    if (kind === "offload") {
      this.#checkTracked(pipeline, "offload", reply.status.gpuBytes);
    } else if (device === "gpu") {
      pipeline.leak = null;
      const tolerance = this.#options.parityTolerance === undefined
        ? DEFAULT_PARITY_TOLERANCE
        : this.#options.parityTolerance;
      if (!pipeline.parityChecked && tolerance !== null) {
        pipeline.parityChecked = true;
        await this.#checkParity(pipeline, tolerance);
      }
    }
    return {
      kind,
      placement: placementOf(pipeline.state),
      releasedBytes: Math.max(0, gpuBytesBefore - (pipeline.client?.lastStatus.gpuBytes ?? 0)),
    };
  }

  /**
   * The first time a model is on the GPU: one probe on both EPs. If they disagree beyond
   * the tolerance, the model is marked `gpuMismatch` and moved to the CPU to stay (the
   * load the scheduler asked for answers where it ended up).
   */
  async #checkParity(pipeline: Pipeline, tolerance: number): Promise<void> {
    const id = pipeline.model.id;
    const client = pipeline.client!;
    const reply = await this.#call(pipeline, () => client.parity(tolerance));
    if (reply.ok && reply.parityDeferred) {
      pipeline.parityChecked = false; // asked again at the next GPU load if no offload ran it
      this.#events.emit({
        kind: "info",
        pipeline: id,
        message: `${id}: GPU/CPU parity check deferred: ${reply.parityDeferred}`,
      });
      return;
    }
    if (!reply.ok || !reply.parity) {
      const why = reply.ok ? "no result" : reply.error.message;
      this.#events.emit({
        kind: "info",
        pipeline: id,
        message: `${id}: the GPU/CPU parity check could not run: ${why}`,
      });
      return;
    }
    await this.#applyParity(pipeline, reply.parity, true);
  }

  /** Logs a parity result; a disagreement marks the model and (`moveToCpu`) moves it to the CPU. */
  async #applyParity(pipeline: Pipeline, result: ParityResult, moveToCpu: boolean): Promise<void> {
    const id = pipeline.model.id;
    const tolerance = result.tolerance;
    if (result.agrees) {
      this.#events.emit({
        kind: "info",
        pipeline: id,
        message: `${id}: GPU and CPU outputs agree (max error ${
          result.maxAbsError.toExponential(1)
        } over ${result.elements} values)`,
      });
      return;
    }
    pipeline.gpuMismatch = { maxAbsError: result.maxAbsError, tolerance, checkedAt: Date.now() };
    this.#events.emit({
      kind: "mismatch",
      pipeline: id,
      message: `${id}: GPU and CPU outputs disagree (max error ${
        result.maxAbsError.toPrecision(3)
      } > ${tolerance}); it stays on the CPU`,
      reason: "GPU/CPU parity check failed",
    });
    if (moveToCpu) await this.#place(pipeline, "cpu");
  }

  async #unload(pipeline: Pipeline): Promise<HostTransition> {
    const client = pipeline.client;
    pipeline.client = null;
    if (!client?.alive) {
      this.#recount(pipeline);
      pipeline.state = "unloaded";
      pipeline.error = null;
      return { kind: "none", placement: "none", releasedBytes: 0 };
    }
    const gpuBytesBefore = client.lastStatus.gpuBytes;
    const peakBefore = client.lastStatus.gpuPeakBytes;
    const measure = this.#startMeasure();
    const reply = await client.unload().catch(() => null);
    client.terminate("unloaded");
    await client.exited;
    this.#recount(pipeline);
    await trimHeap();
    pipeline.state = "unloaded";
    pipeline.error = null;
    pipeline.leak = null;
    const figures = measure.done("unload", reply);
    pipeline.lastTransition = figures;
    this.#events.emit({
      kind: "transition",
      pipeline: pipeline.model.id,
      message: `${pipeline.model.id}: unloaded, worker ended`,
      figures,
      bytes: gpuBytesBefore,
      reason: "unload",
    });
    if (peakBefore > 0) await this.#options.profiles?.notePeak(pipeline.model.id, peakBefore);
    return { kind: "unload", placement: "none", releasedBytes: gpuBytesBefore };
  }

  /**
   * A release must leave no tracked bytes behind; otherwise the pipeline is flagged with
   * a leak. (Whether the driver shows the memory back is the scheduler's check.)
   */
  #checkTracked(pipeline: Pipeline, kind: string, remainingTracked: number): void {
    const id = pipeline.model.id;
    if (remainingTracked > 0) {
      pipeline.leak = `${remainingTracked} GPU bytes still tracked after ${kind}`;
      this.#events.emit({ kind: "leak", pipeline: id, message: `${id}: ${pipeline.leak}` });
      return;
    }
    pipeline.leak = null;
  }

  /** Takes the "before" figures; `done` takes the "after" ones. */
  #startMeasure(): {
    usedBefore: number | null;
    done: (kind: string, reply: WorkerReply | null) => TransitionFigures;
  } {
    const started = performance.now();
    const rssBefore = Deno.memoryUsage().rss;
    const usedBefore = this.#options.deviceUsedBytes?.() ?? null;
    return {
      usedBefore,
      done: (kind, reply) => {
        const usedAfter = usedBefore === null ? null : this.#options.deviceUsedBytes?.() ?? null;
        return {
          kind,
          ms: performance.now() - started,
          gpuBytes: reply?.status.gpuBytes ?? 0,
          ramBytes: reply?.status.ramBytes ?? 0,
          rssDeltaBytes: Deno.memoryUsage().rss - rssBefore,
          deviceUsedDeltaBytes: usedBefore === null || usedAfter === null
            ? null
            : usedAfter - usedBefore,
          at: Date.now(),
        };
      },
    };
  }

  #report(p: Pipeline): ModelReport {
    const status = p.client?.alive ? p.client.lastStatus : null;
    const gpuProfile = this.#options.profiles?.get(p.model.id, "gpu") ?? null;
    const cpuProfile = this.#options.profiles?.get(p.model.id, "cpu") ?? null;
    const catalogInfo = (list: CatalogModel["inputs"]) =>
      (list ?? []).map((t) => ({ name: t.name, type: t.type ?? null, dims: t.dims ?? [] }));
    return {
      id: p.model.id,
      name: p.model.name,
      tags: p.model.tags,
      plugin: p.model.pluginUrl !== null,
      state: p.state,
      placement: placementOf(p.state),
      gpuBytes: status?.gpuBytes ?? 0,
      gpuBuffers: status?.gpuBuffers ?? 0,
      gpuPeakBytes: status?.gpuPeakBytes ?? 0,
      rssBytes: status?.rssBytes ?? 0,
      ramBytes: status?.ramBytes ?? 0,
      engine: status ? engineOf(status) : null,
      modelBytes: p.files?.totalBytes ?? null,
      error: p.error,
      lastTransition: p.lastTransition,
      gpuMismatch: p.gpuMismatch,
      lastUsedAt: null, // the scheduler's record keeps it (one place)
      display: status
        ? "loaded"
        : (p.lastTransition || gpuProfile || cpuProfile)
        ? "unloaded"
        : "never",
      gpuProfile,
      cpuProfile,
      leak: p.leak,
      pinned: false,
      inputs: status?.inputs.length ? status.inputs : catalogInfo(p.model.inputs),
      outputs: status?.outputs.length ? status.outputs : catalogInfo(p.model.outputs),
    };
  }
}

/** The engine of a worker's open session, or null. */
function engineOf(status: WorkerStatus): SessionEngineName | null {
  return status.engine === "none" ? null : status.engine;
}

/** The placement a state implies (transitions count as where they start). */
function placementOf(state: PipelineState): "gpu" | "cpu" | "none" {
  if (state === "gpu" || state === "offloading") return "gpu";
  if (state === "cpu" || state === "rehydrating") return "cpu";
  return "none";
}
