/**
 * Explicit moves asked through the API that answer how the release ended: offload
 * (GPU → CPU) and unload (end the worker), each one decision, answering once the driver
 * shows the memory back or the wait for it runs out. Loads, pins and the stream's move to
 * the CPU need no release answer and go straight to place.ts and moves.ts.
 * @module
 */
import type { Clock } from "../clock.ts";
import { PipelineError } from "../pipelines/errors.ts";
import type { SerialQueue } from "../serial_queue.ts";
import type { Moves } from "./moves.ts";
import type { Records } from "./records.ts";
import type { ReleaseWatch } from "./release_watch.ts";
import type { ReleaseOutcome } from "./releases.ts";

/** What the explicit moves use. */
export interface ExplicitMovesOptions {
  records: Records;
  moves: Moves;
  releases: ReleaseWatch;
  /** The scheduler's serial queue: one decision at a time. */
  decisions: SerialQueue;
  clock: Clock;
}

/** Offload and unload as the API asks them. */
export class ExplicitMoves {
  readonly #o: ExplicitMovesOptions;

  constructor(options: ExplicitMovesOptions) {
    this.#o = options;
  }

  /** GPU → CPU; answers once the driver shows the memory back (or says it did not). */
  async offload(id: string): Promise<ReleaseOutcome> {
    const { records, moves, releases, clock } = this.#o;
    records.get(id);
    const startedAt = clock.now();
    let bytes = 0;
    await this.#o.decisions.run(async () => {
      const view = records.view(id);
      if (view.placement === "cpu") return;
      if (view.placement !== "gpu") {
        throw new PipelineError(
          "not_loaded",
          `Pipeline "${id}" is ${view.state}, not on the GPU: nothing to offload`,
        );
      }
      bytes = view.gpuBytes;
      await moves.offload(id, "requested", "api");
    });
    return await releases.outcome(id, startedAt, bytes);
  }

  /** Releases the session and ends the worker; answers once the driver shows the memory back. */
  async unload(id: string): Promise<ReleaseOutcome> {
    const { records, moves, releases, clock } = this.#o;
    const record = records.get(id);
    if (record.holds > 0) {
      throw new PipelineError(
        "busy",
        `Pipeline "${id}" has ${record.holds} open stream(s); close them before unloading it`,
      );
    }
    const startedAt = clock.now();
    let bytes = 0;
    await this.#o.decisions.run(async () => {
      bytes = records.view(id).gpuBytes;
      await moves.unload(id, "requested", "api");
    });
    return await releases.outcome(id, startedAt, bytes);
  }
}
