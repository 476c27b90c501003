/**
 * Out-of-memory recovery for processing loops (frames, audio chunks): a chunk that
 * fails for lack of GPU memory is retried after releasing what can be released, at
 * most {@link MAX_CONSECUTIVE_OOMS} times in a row (a success resets the count); past
 * that, the loop moves to the CPU or stops with a clear error.
 * @module
 */
import { PipelineError } from "./errors.ts";

/** Retries of one chunk in a row before giving up on the GPU. */
export const MAX_CONSECUTIVE_OOMS = 3;

/** How a loop recovers. */
export interface ChunkLoopOptions<In, Out> {
  /** Processes one chunk (on whatever device the pipeline is on). */
  process: (chunk: In) => Promise<Out>;
  /** Releases what can be released before a retry (for example, evicts an idle pipeline). */
  release: () => Promise<void>;
  /** Past the retries: "cpu" moves the pipeline to the CPU (then the chunk is retried there), "stop" fails. */
  exhausted: () => Promise<"cpu" | "stop">;
}

/** Runs chunks one after another with the recovery policy. */
export class ChunkLoop<In, Out> {
  #consecutiveOoms = 0;
  #onCpu = false;
  readonly #options: ChunkLoopOptions<In, Out>;

  constructor(options: ChunkLoopOptions<In, Out>) {
    this.#options = options;
  }

  /** Out-of-memory failures in a row so far. */
  get consecutiveOoms(): number {
    return this.#consecutiveOoms;
  }

  /** Processes `chunk`, recovering from out-of-memory errors as described above. */
  async handle(chunk: In): Promise<Out> {
    while (true) {
      try {
        const out = await this.#options.process(chunk);
        this.#consecutiveOoms = 0;
        return out;
      } catch (error) {
        if (!(error instanceof PipelineError && error.code === "oom") || this.#onCpu) throw error;
        this.#consecutiveOoms++;
        if (this.#consecutiveOoms > MAX_CONSECUTIVE_OOMS) {
          if ((await this.#options.exhausted()) === "stop") {
            throw new PipelineError(
              "oom",
              `Out of GPU memory on ${
                this.#consecutiveOoms - 1
              } tries of the same chunk in a row; the stream stops. ` +
                `Free VRAM or set HEADROOM_ON_INSUFFICIENT_VRAM=cpu to continue on the CPU.`,
            );
          }
          this.#onCpu = true;
          this.#consecutiveOoms = 0;
          continue;
        }
        await this.#options.release();
      }
    }
  }
}
