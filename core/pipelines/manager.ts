/**
 * The PipelineManager owns one worker per pipeline and every transition between
 * placements: load, run, offload (GPU → CPU), rehydrate (CPU → GPU), unload. Each
 * pipeline's operations pass through its own queue, so a request that arrives during
 * a transition waits for it and is then served, never dropped. A worker that dies
 * marks its pipeline `failed`; the next request starts a fresh one. Every transition
 * is measured and logged.
 * @module
 */
import type { Catalog, CatalogModel } from "../models/catalog.ts";
import type { EventLog } from "../events.ts";
import type {
  GpuMismatch,
  ModelReport,
  PipelineReport,
  PipelineState,
  TransitionFigures,
} from "../types.ts";
import type { ProfileStore } from "../store/profiles.ts";
import type {
  RunInput,
  RunOutput,
  SessionDevice,
  WorkerReply,
  WorkerStatus,
} from "../../workers/protocol.ts";
import { WorkerClient, WorkerDiedError } from "../../workers/client.ts";
import { PipelineError } from "./errors.ts";

/** How the manager is set up. */
export interface PipelineManagerOptions {
  catalog: Catalog;
  events: EventLog;
  /** Whether pipelines load on the GPU (webgpu EP) by default; false = CPU (wasm) only. */
  gpuAvailable: boolean;
  /** A fresh reading of device-used bytes (NVML), or null where no driver tells it. */
  deviceUsedBytes?: () => number | null;
  /** wasm threads per worker (the WebGPU build only works with 1). */
  numThreads?: number;
  /** Narrow each worker's Deno permissions (default true). */
  sandbox?: boolean;
  /** Where measured figures are saved (each transition waits for KV's acknowledgement). */
  profiles?: ProfileStore;
  /** How long a release may take to show in the device's used bytes before it is called a leak. */
  releaseWaitMs?: number;
  /**
   * Largest GPU/CPU output difference the parity check accepts (default 1e-3); null
   * turns the check off.
   */
  parityTolerance?: number | null;
}

/** Default tolerance of the parity check: PaddleOCR det agrees within 3e-5, Silero VAD v5 is off by 0.035. */
export const DEFAULT_PARITY_TOLERANCE = 1e-3;

/** Below this, a release is not checked against the driver: allocators keep small blocks cached. */
export const LEAK_CHECK_MIN_BYTES = 16 * 2 ** 20;

/** One pipeline's record. */
interface Pipeline {
  model: CatalogModel;
  state: PipelineState;
  client: WorkerClient | null;
  status: WorkerStatus | null;
  error: string | null;
  lastTransition: TransitionFigures | null;
  lastUsedAt: number | null;
  /** Tail of this pipeline's operation queue. */
  tail: Promise<unknown>;
  /** Operations queued or running. */
  queued: number;
  pinned: boolean;
  /** Why its GPU memory was not fully given back after a release, or null. */
  leak: string | null;
  gpuMismatch: GpuMismatch | null;
  /** True once the parity check ran (it runs the first time the model is on the GPU). */
  parityChecked: boolean;
  /**
   * Whether the driver's used bytes rose by its GPU bytes when it last came to the GPU
   * (null: not measured). A driver that never showed them arrive (a software adapter,
   * the test double) cannot show them leave: its releases are not checked against it.
   */
  driverSawGpuBytes: boolean | null;
}

/** Owns the pipeline workers and their placement. */
export class PipelineManager {
  readonly #catalog: Catalog;
  readonly #events: EventLog;
  readonly #options: PipelineManagerOptions;
  readonly #pipelines = new Map<string, Pipeline>();
  #gpuSessions: Promise<unknown> = Promise.resolve();

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
        lastUsedAt: null,
        tail: Promise.resolve(),
        queued: 0,
        pinned: false,
        leak: null,
        gpuMismatch: null,
        parityChecked: false,
        driverSawGpuBytes: null,
      });
    }
  }

  /** Where pipelines load when nothing says otherwise. */
  get defaultDevice(): SessionDevice {
    return this.#options.gpuAvailable ? "gpu" : "cpu";
  }

  /** Every pipeline's state, in catalog order. */
  list(): ModelReport[] {
    return [...this.#pipelines.values()].map((p) => this.#report(p));
  }

  /** One pipeline's state; throws unknown_model for an id not in the catalog. */
  get(id: string): ModelReport {
    return this.#report(this.#pipeline(id));
  }

  /** The per-pipeline breakdown for the VRAM report. */
  placements(): PipelineReport[] {
    return [...this.#pipelines.keys()].map((id) => this.placement(id)!);
  }

  /** One pipeline's placement, by a map lookup (the offloader's per-request fast path). */
  placement(id: string): PipelineReport | undefined {
    const p = this.#pipelines.get(id);
    if (!p) return undefined;
    return {
      id,
      state: p.state,
      placement: placementOf(p.state),
      gpuBytes: p.client?.alive ? p.client.lastStatus.gpuBytes : 0,
      gpuBuffers: p.client?.alive ? p.client.lastStatus.gpuBuffers : 0,
      error: p.error,
      pinned: p.pinned,
      leak: p.leak,
      gpuMismatch: p.gpuMismatch !== null,
    };
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

  /** Pins or unpins a pipeline: the offloader never evicts a pinned one. */
  setPinned(id: string, pinned: boolean): ModelReport {
    const p = this.#pipeline(id);
    p.pinned = pinned;
    this.#events.emit({
      kind: "info",
      pipeline: id,
      message: `${id} ${pinned ? "pinned" : "unpinned"}`,
    });
    return this.#report(p);
  }

  /** Live GPU bytes tracked across every worker: the exact figure of what Headroom holds. */
  trackedBytes(): number {
    let total = 0;
    for (const p of this.#pipelines.values()) {
      if (p.client?.alive) total += p.client.lastStatus.gpuBytes;
    }
    return total;
  }

  /** Loads the pipeline on `device` (moving it if it is loaded on the other one). */
  load(id: string, device: SessionDevice = this.defaultDevice): Promise<ModelReport> {
    const pipeline = this.#pipeline(id);
    return this.#enqueue(pipeline, async () => {
      await this.#place(pipeline, device, { fallbackToCpu: false });
      return this.#report(pipeline);
    });
  }

  /** GPU → CPU: frees the pipeline's GPU buffers; it keeps serving on the wasm EP. */
  offload(id: string): Promise<ModelReport> {
    const pipeline = this.#pipeline(id);
    return this.#enqueue(pipeline, async () => {
      if (pipeline.state === "cpu") return this.#report(pipeline);
      if (pipeline.state !== "gpu") {
        throw new PipelineError(
          "not_loaded",
          `Pipeline "${id}" is ${pipeline.state}, not on the GPU: nothing to offload`,
        );
      }
      await this.#place(pipeline, "cpu", { fallbackToCpu: false });
      return this.#report(pipeline);
    });
  }

  /** CPU → GPU (or a fresh GPU load when unloaded). */
  rehydrate(id: string): Promise<ModelReport> {
    return this.load(id, "gpu");
  }

  /** Releases the session and ends the worker (its memory goes back to the system). */
  unload(id: string): Promise<ModelReport> {
    const pipeline = this.#pipeline(id);
    return this.#enqueue(pipeline, async () => {
      await this.#unload(pipeline);
      return this.#report(pipeline);
    });
  }

  /**
   * Runs the pipeline on `input`, loading it first if needed (on `options.device`, else
   * the default device, falling back to the CPU when the GPU cannot take it). A loaded
   * pipeline runs where it is. Waits for any transition.
   */
  run(
    id: string,
    input: RunInput,
    options: { device?: SessionDevice } = {},
  ): Promise<{ output: RunOutput; ms: number; device: SessionDevice }> {
    const pipeline = this.#pipeline(id);
    return this.#enqueue(pipeline, async () => {
      if (pipeline.state !== "gpu" && pipeline.state !== "cpu") {
        await this.#place(pipeline, options.device ?? this.defaultDevice, { fallbackToCpu: true });
      }
      const client = pipeline.client!;
      const reply = await this.#call(pipeline, () => client.run(input));
      pipeline.lastUsedAt = Date.now();
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
    });
  }

  /** Ends a pipeline's worker at once, as a crash would (in-flight requests fail with 503). */
  kill(id: string, reason = "killed"): void {
    const pipeline = this.#pipeline(id);
    pipeline.client?.terminate(reason);
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
    const result = this.#gpuSessions.then(op, op);
    this.#gpuSessions = result.catch(() => {});
    return result;
  }

  /** Runs `op` after every earlier operation on this pipeline has settled. */
  #enqueue<T>(pipeline: Pipeline, op: () => Promise<T>): Promise<T> {
    pipeline.queued++;
    const result = pipeline.tail.then(op, op).finally(() => pipeline.queued--);
    pipeline.tail = result.catch(() => {});
    return result;
  }

  /** Sends a request; a dead worker becomes a worker_died PipelineError (503). */
  async #call(pipeline: Pipeline, send: () => Promise<WorkerReply>): Promise<WorkerReply> {
    try {
      const reply = await send();
      pipeline.status = reply.status;
      return reply;
    } catch (error) {
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

  /** Starts the worker if there is none (or it died). */
  async #ensureWorker(pipeline: Pipeline): Promise<WorkerClient> {
    if (pipeline.client?.alive) return pipeline.client;
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
    let client: WorkerClient;
    try {
      client = await WorkerClient.start({
        modelId: model.id,
        modelPath,
        pluginUrl: model.pluginUrl,
        assets: model.assets,
        numThreads: this.#options.numThreads ?? 1,
      }, { sandbox: this.#options.sandbox ?? true });
    } catch (error) {
      throw new PipelineError("load_failed", `Model "${model.id}": ${(error as Error).message}`);
    }
    pipeline.client = client;
    client.onExit((reason) => {
      if (pipeline.client !== client) return; // ended on purpose (unload, restart)
      pipeline.client = null;
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

  /**
   * Brings the pipeline to `device`: a fresh load, an offload or a rehydrate, measured.
   * With `fallbackToCpu`, a GPU that cannot take it (no adapter, out of memory) leaves it on the CPU.
   */
  async #place(
    pipeline: Pipeline,
    device: SessionDevice,
    { fallbackToCpu }: { fallbackToCpu: boolean },
  ): Promise<void> {
    if (pipeline.state === device && pipeline.client?.alive) return;
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
      pipeline.state = pipeline.client?.alive ? before : "failed";
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
      if (
        device === "gpu" && fallbackToCpu &&
        (reply.error.code === "no_webgpu" || reply.error.code === "oom")
      ) {
        this.#events.emit({
          kind: "info",
          pipeline: id,
          message: `${id} stays on the CPU: the GPU could not take it (${reason})`,
          attempt: kind,
        });
        if (pipeline.state !== "cpu") await this.#place(pipeline, "cpu", { fallbackToCpu: false });
        return;
      }
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
    const figures = measure.done(kind, reply);
    pipeline.lastTransition = figures;
    this.#events.emit({
      kind: "transition",
      pipeline: id,
      message: `${id}: ${kind} in ${
        figures.ms.toFixed(0)
      } ms, ${figures.gpuBytes} GPU bytes tracked`,
      figures,
    });
    await this.#options.profiles?.recordTransition(
      id,
      figures,
      Math.max(peakBefore, reply.status.gpuPeakBytes),
    );
    if (kind === "offload") {
      this.#confirmRelease(
        pipeline,
        "offload",
        reply.status.gpuBytes,
        gpuBytesBefore,
        measure.usedBefore,
      );
    } else if (device === "gpu") {
      pipeline.leak = null;
      pipeline.driverSawGpuBytes = figures.deviceUsedDeltaBytes === null
        ? null
        : figures.deviceUsedDeltaBytes >= figures.gpuBytes / 2;
      const tolerance = this.#options.parityTolerance === undefined
        ? DEFAULT_PARITY_TOLERANCE
        : this.#options.parityTolerance;
      if (!pipeline.parityChecked && tolerance !== null) {
        pipeline.parityChecked = true;
        await this.#checkParity(pipeline, tolerance);
      }
    }
  }

  /**
   * The first time a model is on the GPU: one probe on both EPs. If they disagree beyond
   * the tolerance, the model is marked `gpuMismatch` and moved to the CPU to stay.
   */
  async #checkParity(pipeline: Pipeline, tolerance: number): Promise<void> {
    const id = pipeline.model.id;
    const client = pipeline.client!;
    const reply = await this.#call(pipeline, () => client.parity(tolerance));
    if (!reply.ok || !reply.parity) {
      const why = reply.ok ? "no result" : reply.error.message;
      this.#events.emit({
        kind: "info",
        pipeline: id,
        message: `${id}: the GPU/CPU parity check could not run: ${why}`,
      });
      return;
    }
    const result = reply.parity;
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
    });
    await this.#place(pipeline, "cpu", { fallbackToCpu: false });
  }

  async #unload(pipeline: Pipeline): Promise<void> {
    const client = pipeline.client;
    pipeline.client = null;
    if (!client?.alive) {
      pipeline.state = "unloaded";
      pipeline.error = null;
      return;
    }
    const gpuBytesBefore = client.lastStatus.gpuBytes;
    const peakBefore = client.lastStatus.gpuPeakBytes;
    const measure = this.#startMeasure();
    const reply = await client.unload().catch(() => null);
    client.terminate("unloaded");
    await client.exited;
    pipeline.state = "unloaded";
    pipeline.error = null;
    const figures = measure.done("unload", reply);
    pipeline.lastTransition = figures;
    this.#events.emit({
      kind: "transition",
      pipeline: pipeline.model.id,
      message: `${pipeline.model.id}: unloaded, worker ended`,
      figures,
    });
    if (peakBefore > 0) await this.#options.profiles?.notePeak(pipeline.model.id, peakBefore);
    // The worker is gone, and its GPU device with it: only the driver can still tell.
    this.#confirmRelease(pipeline, "unload", 0, gpuBytesBefore, measure.usedBefore);
  }

  /**
   * Confirms a release gave the memory back: no tracked bytes left, and (with a driver
   * that reports used bytes, for releases large enough to see) device-used fell by at
   * least half the released bytes within `releaseWaitMs`. Otherwise flags a leak on the
   * pipeline and logs it. The driver check runs in the background.
   */
  #confirmRelease(
    pipeline: Pipeline,
    kind: string,
    remainingTracked: number,
    releasedBytes: number,
    usedBefore: number | null,
  ): void {
    const id = pipeline.model.id;
    const flag = (leak: string) => {
      pipeline.leak = leak;
      this.#events.emit({ kind: "leak", pipeline: id, message: `${id}: ${leak}` });
    };
    if (remainingTracked > 0) {
      flag(`${remainingTracked} GPU bytes still tracked after ${kind}`);
      return;
    }
    pipeline.leak = null;
    const readUsed = this.#options.deviceUsedBytes;
    if (!readUsed || usedBefore === null || releasedBytes < LEAK_CHECK_MIN_BYTES) return;
    // The driver never showed these bytes arrive: it cannot show them come back either.
    if (pipeline.driverSawGpuBytes === false) return;
    const deadline = Date.now() + (this.#options.releaseWaitMs ?? 2000);
    const poll = () => {
      const used = readUsed();
      if (used === null || usedBefore - used >= releasedBytes / 2) return;
      if (Date.now() >= deadline) {
        flag(
          `device used fell by ${usedBefore - used} bytes within ${
            this.#options.releaseWaitMs ?? 2000
          } ms of the ${kind}, expected about ${releasedBytes}`,
        );
        return;
      }
      setTimeout(poll, 100);
    };
    poll();
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
      error: p.error,
      lastTransition: p.lastTransition,
      gpuMismatch: p.gpuMismatch,
      lastUsedAt: p.lastUsedAt,
      display: status
        ? "loaded"
        : (p.lastTransition || gpuProfile || cpuProfile)
        ? "unloaded"
        : "never",
      gpuProfile,
      cpuProfile,
      leak: p.leak,
      pinned: p.pinned,
      inputs: status?.inputs.length ? status.inputs : catalogInfo(p.model.inputs),
      outputs: status?.outputs.length ? status.outputs : catalogInfo(p.model.outputs),
    };
  }
}

/** The placement a state implies (transitions count as where they start). */
function placementOf(state: PipelineState): "gpu" | "cpu" | "none" {
  if (state === "gpu" || state === "offloading") return "gpu";
  if (state === "cpu" || state === "rehydrating") return "cpu";
  return "none";
}
