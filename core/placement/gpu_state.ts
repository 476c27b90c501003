/**
 * Reading the device and counting the headroom: a reading of device 0 (the monitor's
 * latest sample, or a fresh driver read before a move), the free bytes as the policy
 * counts them, and the GPU as the budget sees it ({@link GpuState}), from which every
 * placement, eviction and status figure is computed.
 * @module
 */
import type { Clock } from "../clock.ts";
import type { GpuState, PlacedPipeline } from "./budget.ts";
import type { DeviceReading, DeviceView } from "./device.ts";
import type { PipelineHost } from "./host.ts";
import { placed, type Records } from "./records.ts";
import type { ReleaseTracker } from "./releases.ts";

/** What the accounting reads. */
export interface GpuAccountOptions {
  device: DeviceView;
  /** Headroom's allowance in bytes for a device total. */
  budgetFor: (totalBytes: number) => number;
  /** Free VRAM to keep, exactly as configured. */
  headroomBytes: number;
  host: Pick<PipelineHost, "view" | "trackedBytes">;
  records: Records;
  /** Releases in flight: their bytes count as free until the driver shows them. */
  releases: ReleaseTracker;
  clock: Clock;
}

/** Device readings and the GPU state the budget functions take. */
export class GpuAccount {
  readonly #o: GpuAccountOptions;

  constructor(options: GpuAccountOptions) {
    this.#o = options;
  }

  /**
   * A reading of the device: the monitor's latest sample (what started a headroom pass,
   * and what check() reads), or a fresh driver read before a move.
   */
  read(fresh: boolean): DeviceReading {
    return this.#o.device.read(fresh);
  }

  /** Free bytes as the policy counts them: the driver's, corrected for our changes since, plus releases not shown yet. */
  freeBytes(reading: DeviceReading): number {
    // Our own changes since the reading (its tracked bytes are ours when it was taken), and
    // releases the driver does not show yet in a reading taken after them.
    const drift = this.#o.host.trackedBytes() - reading.trackedBytes;
    return Math.max(0, reading.freeBytes - drift + this.#o.releases.unshownBytes(reading));
  }

  /** The GPU as the budget sees it: only the pipelines on the GPU when `all` is false. */
  state(reading: DeviceReading, all: boolean): GpuState {
    const budgetBytes = this.#o.budgetFor(reading.totalBytes);
    const pipelines: PlacedPipeline[] = [];
    if (all) {
      for (const record of this.#o.records.values()) {
        const view = this.#o.host.view(record.id);
        if (!view || view.placement !== "gpu") continue;
        pipelines.push(placed(record, view));
      }
    }
    return {
      available: usable(reading),
      deviceFreeBytes: this.freeBytes(reading),
      budgetBytes,
      headroomBytes: this.#o.headroomBytes,
      now: this.#o.clock.now(),
      pipelines,
    };
  }
}

/** True when a reading says a GPU can take pipelines (a device is there and not lost). */
export function usable(reading: DeviceReading): boolean {
  return reading.state === "ok" || reading.state === "error";
}
