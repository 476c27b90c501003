/**
 * Chain placement: the pre-flight check of models that run together (OCR's det, cls,
 * rec), which changes nothing, and placing the members on the GPU as one decision when
 * it says they fit. A check that fits without evictions looks only at the members, so it
 * costs the same at 10 or 10,000 pipelines.
 * @module
 */
import type { SerialQueue } from "../serial_queue.ts";
import { canFitChain, type FitResult, type ModelFootprint } from "./budget.ts";
import type { GpuAccount } from "./gpu_state.ts";
import type { PipelineHost } from "./host.ts";
import type { Placer } from "./place.ts";
import { placed, type Records } from "./records.ts";

/** What chain placement reads and moves. */
export interface ChainOptions {
  host: Pick<PipelineHost, "view" | "trackedBytes">;
  records: Records;
  account: GpuAccount;
  placer: Placer;
  /** The scheduler's serial queue: one decision at a time. */
  decisions: SerialQueue;
  footprint: (id: string) => ModelFootprint;
}

/** Where each member of a chain is after {@link ChainPlacement.place}. */
export type ChainPlacements = Record<string, "gpu" | "cpu" | "none">;

/** The pre-flight check and placement of chains. */
export class ChainPlacement {
  readonly #o: ChainOptions;

  constructor(options: ChainOptions) {
    this.#o = options;
  }

  /**
   * The pre-flight check for a chain, changing nothing. When the chain fits without
   * evictions it costs the same at 10 or 10,000 pipelines: only the members are looked at.
   */
  check(ids: string[]): FitResult {
    const { records, account, host } = this.#o;
    for (const id of ids) records.get(id);
    const reading = account.read(false);
    const footprints = ids.map((id) => this.#o.footprint(id));
    const small = account.state(reading, false);
    // The members on the GPU, and everything else ours as one unmovable block.
    let membersOnGpu = 0;
    const seen = new Set<string>();
    for (const id of ids) {
      const view = host.view(id)!;
      if (view.placement !== "gpu" || seen.has(id)) continue;
      seen.add(id);
      membersOnGpu += view.gpuBytes;
      small.pipelines.push(placed(records.get(id), view));
    }
    const rest = host.trackedBytes() - membersOnGpu;
    if (rest > 0) {
      small.pipelines.push({
        id: "",
        placement: "gpu",
        gpuBytes: rest,
        lastUsedAt: 0,
        activeCount: 1,
        pinned: true,
      });
    }
    const quick = canFitChain(footprints, small);
    if (quick.fits || !small.available) return quick;
    return canFitChain(footprints, account.state(reading, true));
  }

  /** Places a chain's members on the GPU when the pre-flight says it fits (one decision). */
  place(ids: string[]): Promise<{ check: FitResult; placements: ChainPlacements }> {
    return this.#o.decisions.run(async () => {
      const check = this.check(ids);
      if (check.fits) {
        for (const id of ids) await this.#o.placer.placeLocked(id, "gpu", "chain");
      }
      const placements: ChainPlacements = {};
      for (const id of ids) placements[id] = this.#o.records.view(id).placement;
      return { check, placements };
    });
  }
}
