/**
 * Placing one pipeline, inside a decision: to the CPU when asked; to the GPU when a
 * usable GPU is there and its GPU and CPU outputs agree, after eviction made room, with
 * out-of-memory retries; otherwise the CPU or a refusal, as configured. The fast path of
 * a request (already on the GPU) answers without queueing a decision.
 * @module
 */
import type { Clock } from "../clock.ts";
import { PipelineError } from "../pipelines/errors.ts";
import type { SessionDevice } from "../pipelines/protocol.ts";
import type { SerialQueue } from "../serial_queue.ts";
import { estimateModelVram, type ModelFootprint } from "./budget.ts";
import type { Eviction } from "./eviction.ts";
import type { GpuAccount } from "./gpu_state.ts";
import type { KeepAliveTimers } from "./keep_alive.ts";
import type { Moves } from "./moves.ts";
import { type Emit, placedOnGpu } from "./placement_events.ts";
import type { Records } from "./records.ts";

/** What placing reads and moves. */
export interface PlacerOptions {
  records: Records;
  account: GpuAccount;
  moves: Moves;
  eviction: Eviction;
  keepAlives: KeepAliveTimers;
  /** The scheduler's serial queue: one decision at a time. */
  decisions: SerialQueue;
  footprint: (id: string) => ModelFootprint;
  onInsufficientVram: "cpu" | "reject";
  clock: Clock;
  emit: Emit;
}

/** Brings pipelines to a device through the policy. */
export class Placer {
  readonly #o: PlacerOptions;

  constructor(options: PlacerOptions) {
    this.#o = options;
  }

  /** Brings `id` to the GPU if the policy allows (else the CPU), as one decision unless it is there already. */
  ensure(id: string, signal?: AbortSignal): Promise<SessionDevice> {
    const view = this.#o.records.view(id);
    // Already on the GPU: no decision to make (an active pipeline is never evicted).
    if (view.placement === "gpu") return Promise.resolve("gpu");
    // On the CPU with no GPU to move to: nothing to decide, so nothing to wait for (a
    // load of another model, which can take long, never holds it).
    if (view.placement === "cpu" && this.#o.account.read(false).state === "none") {
      return Promise.resolve("cpu");
    }
    return this.#o.decisions.run(() => this.placeLocked(id, "gpu", "request"), signal);
  }

  /** Brings `id` to `want`, making room on the GPU first; falls back or refuses per configuration. */
  async placeLocked(id: string, want: SessionDevice, trigger: string): Promise<SessionDevice> {
    const { records, account, moves, eviction } = this.#o;
    const record = records.get(id);
    const view = records.view(id);
    if (want === "cpu") {
      if (view.placement === "gpu") await moves.offload(id, "requested", trigger);
      else if (view.placement !== "cpu") await moves.load(id, "cpu");
      record.cpuReason = null;
      return "cpu";
    }
    if (view.placement === "gpu") return "gpu";
    const reading = account.read(true);
    if (reading.state === "none") {
      return await moves.toCpu(id, view, "no GPU is usable", trigger);
    }
    if (reading.state === "lost") {
      const why = `the GPU is lost (${reading.error ?? "driver error"})`;
      if (this.#o.onInsufficientVram === "reject") {
        throw new PipelineError(
          "gpu_lost",
          `${id} cannot go to the GPU: ${why}. Retry when it recovers, or set HEADROOM_ON_INSUFFICIENT_VRAM=cpu.`,
          5,
        );
      }
      return await moves.toCpu(id, view, why, trigger);
    }
    if (view.gpuMismatch) {
      return await moves.toCpu(id, view, "its GPU and CPU outputs disagree", trigger);
    }
    const estimate = estimateModelVram(this.#o.footprint(id));
    if (await eviction.makeRoom(id, estimate, reading, trigger) === "cpu") return "cpu";
    for (let attempt = 1;; attempt++) {
      try {
        const before = account.read(true);
        await moves.load(id, "gpu");
        moves.noteLoadSeen(record, before);
        if (records.view(id).placement !== "gpu") {
          // The host moved it to the CPU itself (its parity check failed).
          record.cpuReason = "its GPU and CPU outputs disagree";
          return "cpu";
        }
        record.lastUsedAt = this.#o.clock.now(); // just placed counts as just used
        record.cpuReason = null;
        this.#o.emit(placedOnGpu(id, estimate, trigger));
        this.#o.keepAlives.arm(record);
        return "gpu";
      } catch (error) {
        if (error instanceof PipelineError && error.code === "no_webgpu") {
          return await moves.toCpu(
            id,
            records.view(id),
            `the GPU could not take it (${error.message})`,
          );
        }
        if (!(error instanceof PipelineError && error.code === "oom")) throw error;
        const next = await eviction.afterOom(id, attempt, error);
        if (next === "cpu") return "cpu";
      }
    }
  }
}
