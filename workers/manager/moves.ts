/**
 * Carries out moves on one pipeline (inside its queue): a fresh load, an offload
 * (GPU → CPU), a rehydrate (CPU → GPU) and an unload. Each move follows the state machine
 * in transitions.ts, is measured (measure.ts), logged as an event, saved to the profile
 * store, and, on a first GPU load, followed by the parity check (parity.ts), whose verdict
 * the host only reports: the Scheduler decides where a mismatched pipeline goes.
 * @module
 */
import type { EventLog } from "../../core/events.ts";
import type { ProfileStore } from "../../core/store/profiles.ts";
import type { SessionDevice, WorkerReply } from "../../core/pipelines/protocol.ts";
import { PipelineError } from "../../core/pipelines/pipeline_error.ts";
import { SerialQueue } from "../../core/serial_queue.ts";
import { engineLimit } from "../../core/models/limits.ts";
import type { HostTransition, Meter } from "../../core/placement/types.ts";
import { trimHeap } from "../../ffi/libc.ts";
import { fromWorkerError } from "./worker_errors.ts";
import type { WorkerLifecycle } from "./lifecycle.ts";
import { startTransition } from "./measure.ts";
import type { ParityPolicy } from "./parity.ts";
import type { Pipeline } from "./pipeline.ts";
import {
  isPlaced,
  moveKind,
  movingState,
  placementOf,
  refusedState,
  settledState,
  thrownState,
} from "./transitions.ts";

/** What moves need from the host. */
export interface MoveDeps {
  events: EventLog;
  profiles?: ProfileStore;
  lifecycle: WorkerLifecycle;
  meter?: Meter;
  parity: ParityPolicy;
  /** Sends a request to the pipeline's worker, keeping the host's figures in step. */
  call<R extends WorkerReply>(pipeline: Pipeline, send: () => Promise<R>): Promise<R>;
  /** Brings the host's running sum of tracked bytes in step with the pipeline's worker. */
  recount(pipeline: Pipeline): void;
}

/** The host's moves; the caller holds the pipeline's queue. */
export class HostMoves {
  readonly #deps: MoveDeps;
  readonly #gpuSessions = new SerialQueue();

  constructor(deps: MoveDeps) {
    this.#deps = deps;
  }

  /** Brings the pipeline to `device`: a fresh load, an offload or a rehydrate, measured. */
  async moveTo(pipeline: Pipeline, device: SessionDevice): Promise<HostTransition> {
    const { events, lifecycle, profiles } = this.#deps;
    if (pipeline.state === device && pipeline.client?.alive) {
      return { kind: "none", placement: device, releasedBytes: 0, trackedAfterBytes: 0 };
    }
    const id = pipeline.model.id;
    const loaded = isPlaced(pipeline.state) && pipeline.client?.alive === true;
    const kind = moveKind(loaded, device);
    const before = pipeline.state;
    const gpuBytesBefore = loaded ? pipeline.client!.lastStatus.gpuBytes : 0;
    const peakBefore = loaded ? pipeline.client!.lastStatus.gpuPeakBytes : 0;
    pipeline.state = movingState(kind);
    const measure = startTransition(this.#deps.meter);
    let reply: WorkerReply<"load" | "offload" | "rehydrate">;
    try {
      const limit = engineLimit(
        await lifecycle.modelFiles(pipeline),
        device === "gpu" ? "webgpu" : lifecycle.cpuEngine,
      );
      if (limit) throw new PipelineError("model_too_large", `Model "${id}": ${limit}`);
      const client = await lifecycle.ensure(pipeline);
      const move = () =>
        this.#deps.call<WorkerReply<"load" | "offload" | "rehydrate">>(
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
      const refused = error instanceof PipelineError &&
        (error.code === "model_too_large" || error.code === "bad_model");
      pipeline.state = thrownState(before, {
        workerAlive: pipeline.client?.alive === true,
        refused,
      });
      pipeline.error = (error as Error).message;
      events.emit({
        kind: "info",
        pipeline: id,
        message: `${id}: ${kind} failed (${pipeline.error})`,
        attempt: kind,
      });
      throw error;
    }
    if (!reply.ok) {
      const reason = `${reply.error.code}: ${reply.error.message}`;
      pipeline.state = refusedState(before, reply.status.device);
      pipeline.error = reason;
      // "info": a "failure" event means a worker died; this one only failed to move.
      events.emit({
        kind: "info",
        pipeline: id,
        message: `${id}: ${kind} failed (${reason})`,
        attempt: kind,
      });
      throw fromWorkerError(
        "move",
        reply.error,
        `Pipeline "${id}": ${kind} failed: ${reply.error.message}`,
      );
    }
    pipeline.state = settledState(reply.status.device);
    pipeline.error = null;
    // A move released a session: hand its freed heap back to the system now, or RSS keeps
    // a big model's weights long after they are gone.
    if (loaded) await trimHeap();
    const figures = measure.done(kind, reply.status);
    pipeline.lastTransition = figures;
    events.emit({
      kind: "transition",
      pipeline: id,
      message: `${id}: ${kind} in ${
        figures.ms.toFixed(0)
      } ms, ${figures.gpuBytes} GPU bytes tracked`,
      figures,
      bytes: figures.gpuBytes,
      reason: kind,
    });
    await profiles?.recordTransition(
      id,
      figures,
      Math.max(peakBefore, reply.status.gpuPeakBytes),
    );
    if (kind === "offload") {
      this.#deps.parity.afterOffload(pipeline, "parity" in reply ? reply.parity : undefined);
    } else if (device === "gpu") {
      // The verdict lands in pipeline.gpuMismatch (the view); the Scheduler acts on it.
      const client = pipeline.client!;
      await this.#deps.parity.afterGpuLoad(
        pipeline,
        (tolerance) => this.#deps.call(pipeline, () => client.parity(tolerance)),
      );
    }
    const trackedAfter = pipeline.client?.lastStatus.gpuBytes ?? 0;
    return {
      kind,
      placement: placementOf(pipeline.state),
      releasedBytes: Math.max(0, gpuBytesBefore - trackedAfter),
      trackedAfterBytes: device === "cpu" ? reply.status.gpuBytes : 0,
    };
  }

  /** Releases the session and ends the worker (its memory goes back to the system). */
  async unload(pipeline: Pipeline): Promise<HostTransition> {
    const { events, profiles } = this.#deps;
    const client = pipeline.client;
    pipeline.client = null;
    if (!client?.alive) {
      this.#deps.recount(pipeline);
      pipeline.state = "unloaded";
      pipeline.error = null;
      return { kind: "none", placement: "none", releasedBytes: 0, trackedAfterBytes: 0 };
    }
    const gpuBytesBefore = client.lastStatus.gpuBytes;
    const peakBefore = client.lastStatus.gpuPeakBytes;
    const measure = startTransition(this.#deps.meter);
    const reply = await client.unload().catch(() => null);
    client.terminate("unloaded");
    await client.exited;
    this.#deps.recount(pipeline);
    await trimHeap();
    pipeline.state = "unloaded";
    pipeline.error = null;
    const figures = measure.done("unload", reply?.status ?? null);
    pipeline.lastTransition = figures;
    events.emit({
      kind: "transition",
      pipeline: pipeline.model.id,
      message: `${pipeline.model.id}: unloaded, worker ended`,
      figures,
      bytes: gpuBytesBefore,
      reason: "unload",
    });
    if (peakBefore > 0) await profiles?.notePeak(pipeline.model.id, peakBefore);
    return {
      kind: "unload",
      placement: "none",
      releasedBytes: gpuBytesBefore,
      trackedAfterBytes: 0,
    };
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
}
