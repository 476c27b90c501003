/**
 * The GPU/CPU parity policy: the first time a model is on the GPU, one probe runs on both
 * engines; if the outputs disagree beyond the tolerance the model is marked `gpuMismatch`
 * (a verdict the host reports; the Scheduler keeps it on the CPU). Above {@link PARITY_AT_LOAD_MAX_BYTES} the worker defers the check
 * to the first offload (where the CPU session exists anyway), and the result comes with
 * the offload's reply.
 * @module
 */
import type { EventLog } from "../../core/events.ts";
import type { ParityResult, WorkerReply } from "../../core/pipelines/protocol.ts";
import type { Pipeline } from "./pipeline.ts";

/**
 * The parity rule's size line: up to 256 MiB the check creates a temporary CPU session at
 * the first GPU load (a small, short-lived second copy); above, it waits for the first
 * offload, where the CPU session is created anyway, so a big model is never held twice for it.
 */
export const PARITY_AT_LOAD_MAX_BYTES = 256 * 2 ** 20;

/**
 * Default tolerance of the parity check: PaddleOCR det agrees within 3e-5; Silero VAD v5 is
 * off by up to 4.5 on the software adapter (a webgpu EP Conv bug for 129 input channels:
 * docs/gpu_parity.md), so it stays on the CPU.
 */
export const DEFAULT_PARITY_TOLERANCE = 1e-3;

/** When the parity check runs and what its result does to a pipeline. */
export class ParityPolicy {
  readonly #tolerance: number | null;
  readonly #events: EventLog;

  /** `tolerance`: the largest difference accepted (undefined: the default; null: no check). */
  constructor(tolerance: number | null | undefined, events: EventLog) {
    this.#tolerance = tolerance === undefined ? DEFAULT_PARITY_TOLERANCE : tolerance;
    this.#events = events;
  }

  /** After an offload: records the result of a deferred check the offload ran, if any. */
  afterOffload(pipeline: Pipeline, result: ParityResult | undefined): void {
    if (!result) return;
    pipeline.parityChecked = true;
    this.#apply(pipeline, result);
  }

  /**
   * After a load on the GPU: runs the check the first time (through `ask`). Answers true
   * when the outputs disagree; the verdict is in `pipeline.gpuMismatch`, which the host's
   * view reports: the Scheduler moves the pipeline to the CPU, the host moves nothing.
   */
  async afterGpuLoad(
    pipeline: Pipeline,
    ask: (tolerance: number) => Promise<WorkerReply<"parity">>,
  ): Promise<boolean> {
    const tolerance = this.#tolerance;
    if (pipeline.parityChecked || tolerance === null) return false;
    pipeline.parityChecked = true;
    const id = pipeline.model.id;
    const reply = await ask(tolerance);
    if (reply.ok && reply.parityDeferred) {
      pipeline.parityChecked = false; // asked again at the next GPU load if no offload ran it
      this.#events.emit({
        kind: "info",
        pipeline: id,
        message: `${id}: GPU/CPU parity check deferred: ${reply.parityDeferred}`,
      });
      return false;
    }
    if (!reply.ok || !reply.parity) {
      const why = reply.ok ? "no result" : reply.error.message;
      this.#events.emit({
        kind: "info",
        pipeline: id,
        message: `${id}: the GPU/CPU parity check could not run: ${why}`,
      });
      return false;
    }
    return this.#apply(pipeline, reply.parity);
  }

  /** Logs a result; a disagreement marks the model. Answers true when they disagree. */
  #apply(pipeline: Pipeline, result: ParityResult): boolean {
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
      return false;
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
    return true;
  }
}
