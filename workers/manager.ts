/**
 * The PipelineManager: the worker host ({@link PipelineHost}) that the Scheduler drives.
 * It owns one worker per pipeline and carries out transitions when told: load, run,
 * offload (GPU → CPU), rehydrate (CPU → GPU), unload. It decides nothing about
 * placement. Each pipeline's operations pass through its own queue, so a request that
 * arrives during a transition waits for it; a request whose client left is dropped from
 * it. A worker that dies (or is replaced when stuck) marks its pipeline `failed`; the
 * next request starts a fresh one.
 *
 * This file holds the queues and the public surface; each concern has its own module in
 * manager/: the state machine (transitions.ts), the moves (moves.ts), their measurement
 * (measure.ts), the parity check (parity.ts: a verdict the host reports, never a move),
 * the worker lifecycle (lifecycle.ts), worker → pipeline errors (worker_errors.ts) and the
 * report view (report.ts), and the runs with their dynamic batching (batcher.ts).
 * @module
 */
import type { Catalog } from "../core/models/catalog.ts";
import type { EventLog } from "../core/events.ts";
import type { CpuEngineReport, HostReport } from "../core/types.ts";
import type { ProfileStore } from "../core/store/profiles.ts";
import type { RunInput, SessionDevice, WorkerReply } from "../core/pipelines/protocol.ts";
import { PipelineError } from "../core/pipelines/pipeline_error.ts";
import type {
  HostRunOptions,
  HostRunResult,
  HostTransition,
  HostView,
  Meter,
  PipelineHost,
} from "../core/placement/types.ts";
import { fromThrown } from "./manager/worker_errors.ts";
import { type LifecycleOptions, WorkerLifecycle } from "./manager/lifecycle.ts";
import { HostMoves } from "./manager/moves.ts";
import { HostRuns } from "./manager/batcher.ts";
import { ParityPolicy } from "./manager/parity.ts";
import { liveStatus, newPipeline, type Pipeline } from "./manager/pipeline.ts";
import { reportOf, viewOf } from "./manager/report.ts";

export type { WorkerHandle } from "./manager/pipeline.ts";
export type { WorkerStarter } from "./manager/lifecycle.ts";
export { DEFAULT_PARITY_TOLERANCE, PARITY_AT_LOAD_MAX_BYTES } from "./manager/parity.ts";

/** How the manager is set up. */
export interface PipelineManagerOptions extends LifecycleOptions {
  catalog: Catalog;
  events: EventLog;
  /** Whether pipelines load on the GPU (webgpu EP) by default; false = CPU (wasm) only. */
  gpuAvailable: boolean;
  /** The process's meter (RSS, the driver's used bytes) each transition is measured with. */
  meter?: Meter;
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
   * creating a CPU session of its own at the first GPU load (default PARITY_AT_LOAD_MAX_BYTES).
   */
  parityAtLoadMaxBytes?: number;
}

/** Owns the pipeline workers; the Scheduler tells it what to move. */
export class PipelineManager implements PipelineHost {
  readonly #catalog: Catalog;
  readonly #options: PipelineManagerOptions;
  readonly #pipelines = new Map<string, Pipeline>();
  readonly #lifecycle: WorkerLifecycle;
  readonly #moves: HostMoves;
  readonly #runs: HostRuns;
  #trackedTotal = 0;

  constructor(options: PipelineManagerOptions) {
    this.#catalog = options.catalog;
    this.#options = options;
    for (const model of options.catalog.list()) this.#pipelines.set(model.id, newPipeline(model));
    this.#lifecycle = new WorkerLifecycle(
      options.catalog,
      options.events,
      options,
      (pipeline) => this.#recount(pipeline),
    );
    this.#moves = new HostMoves({
      events: options.events,
      profiles: options.profiles,
      lifecycle: this.#lifecycle,
      meter: options.meter,
      parity: new ParityPolicy(options.parityTolerance, options.events),
      call: (pipeline, send) => this.#call(pipeline, send),
      recount: (pipeline) => this.#recount(pipeline),
    });
    this.#runs = new HostRuns({
      events: options.events,
      profiles: options.profiles,
      call: (pipeline, send) => this.#call(pipeline, send),
      replace: (pipeline, reason) => pipeline.client?.terminate(reason),
    });
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
    return p ? viewOf(p) : undefined;
  }

  /** What the host owns of one pipeline; throws unknown_model for an id not in the catalog. */
  report(id: string): HostReport {
    return reportOf(this.#pipeline(id), this.#options.profiles);
  }

  /** Live GPU bytes tracked across every worker (a running sum, updated on every reply). */
  trackedBytes(): number {
    return this.#trackedTotal;
  }

  /** Loads the pipeline on `device` (moving it if it is loaded on the other one). */
  load(id: string, device: SessionDevice = this.defaultDevice): Promise<HostTransition> {
    const pipeline = this.#pipeline(id);
    pipeline.movesQueued++;
    return pipeline.queue.run(() => this.#moves.moveTo(pipeline, device));
  }

  /** GPU → CPU: frees the pipeline's GPU buffers; it keeps serving on the CPU. */
  offload(id: string): Promise<HostTransition> {
    const pipeline = this.#pipeline(id);
    pipeline.movesQueued++;
    return pipeline.queue.run(async () => {
      if (pipeline.state === "cpu") {
        return { kind: "none", placement: "cpu", releasedBytes: 0, trackedAfterBytes: 0 };
      }
      if (pipeline.state !== "gpu") {
        throw new PipelineError(
          "not_loaded",
          `Pipeline "${id}" is ${pipeline.state}, not on the GPU: nothing to offload`,
        );
      }
      return await this.#moves.moveTo(pipeline, "cpu");
    });
  }

  /** Releases the session and ends the worker (its memory goes back to the system). */
  unload(id: string): Promise<HostTransition> {
    const pipeline = this.#pipeline(id);
    pipeline.movesQueued++;
    return pipeline.queue.run(() => this.#moves.unload(pipeline));
  }

  /**
   * Runs a loaded pipeline where it is (not_loaded when it is not), alone or batched with
   * other waiting runs (manager/batcher.ts). Waits for the moves queued before it; higher
   * priorities go first; dropped when `signal` fires first; past `deadline` it answers
   * timeout, and the worker is replaced when no caller in its run is left.
   */
  run(id: string, input: RunInput, options: HostRunOptions = {}): Promise<HostRunResult> {
    return this.#runs.run(this.#pipeline(id), input, options);
  }

  /**
   * Ends a pipeline's worker at once, as a crash would (a stuck worker; in-flight requests
   * fail with 503): the pipeline is marked failed and the next use starts a fresh one.
   */
  replace(id: string, reason: string): void {
    this.#pipeline(id).client?.terminate(reason);
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

  /** Keeps the running sum of tracked bytes in step with this pipeline's worker. */
  #recount(pipeline: Pipeline): void {
    const now = liveStatus(pipeline)?.gpuBytes ?? 0;
    this.#trackedTotal += now - pipeline.counted;
    pipeline.counted = now;
  }

  /** Sends a request; what it throws becomes a pipeline error (see manager/worker_errors.ts). */
  async #call<R extends WorkerReply>(pipeline: Pipeline, send: () => Promise<R>): Promise<R> {
    try {
      const reply = await send();
      pipeline.status = reply.status;
      this.#recount(pipeline);
      return reply;
    } catch (error) {
      this.#recount(pipeline);
      throw fromThrown(error, pipeline.model.id);
    }
  }
}
