/**
 * Watching releases until the driver shows them (ollama's waitForVRAMRecovery): after a
 * move gives GPU bytes back, polls the device on the scheduler's clock until the free
 * figure shows them (a "release" event) or the wait runs out (the pipeline is marked
 * leaking, a "leak" event). The bytes in flight are kept in the {@link ReleaseTracker}.
 * @module
 */
import type { Clock } from "../clock.ts";
import type { DeviceReading, DeviceView } from "./device.ts";
import { type Emit, releaseConfirmed, releaseLeak } from "./placement_events.ts";
import type { Records } from "./records.ts";
import {
  DEFAULT_RELEASE_WAIT_MS,
  RELEASE_CHECK_MIN_BYTES,
  type ReleaseOutcome,
  type ReleaseTracker,
} from "./releases.ts";

/** What the watch reads and where it reports. */
export interface ReleaseWatchOptions {
  tracker: ReleaseTracker;
  device: DeviceView;
  clock: Clock;
  records: Records;
  emit: Emit;
  /** How long a release may take to show before it is flagged as a leak (default 2 s). */
  waitMs?: number;
  /** How often a release is checked against the driver (default 20 ms). */
  pollMs?: number;
}

/** Releases in flight, checked against the driver until confirmed or given up on. */
export class ReleaseWatch {
  readonly #o: ReleaseWatchOptions;
  #closed = false;

  constructor(options: ReleaseWatchOptions) {
    this.#o = options;
  }

  /** Bytes counted as releasing (whatever the driver shows). */
  get releasingBytes(): number {
    return this.#o.tracker.releasingBytes;
  }

  /**
   * Counts `bytes` given back by `id` as releasing until the driver shows them; `before`
   * is the reading taken just before the move. Small releases, readings without a driver
   * that shows releases, and pipelines whose loads the driver never saw are not watched.
   */
  track(id: string, bytes: number, before: DeviceReading): void {
    if (!before.confirmsReleases || bytes < RELEASE_CHECK_MIN_BYTES) return;
    if (before.state !== "ok") return;
    const { device, clock, records, emit, tracker } = this.#o;
    if (records.get(id).driverSeesLoads === false) return; // it never saw them arrive
    const waitMs = this.#o.waitMs ?? DEFAULT_RELEASE_WAIT_MS;
    // Readings up to this one were taken before our tracked bytes fell: their drift already
    // counts the release. Later ones do not, until the driver shows it.
    const after = device.read(true);
    const release = tracker.start(id, bytes, before.freeBytes, after.seq, clock.now(), waitMs);
    const poll = () => {
      if (this.#closed) return release.settle(false);
      const reading = device.read(true);
      if (reading.state === "ok" && tracker.confirmIfShown(release, reading.freeBytes)) {
        emit(releaseConfirmed(id, bytes, clock.now() - release.startedAt));
        records.get(id).leak = null;
        return;
      }
      if (clock.now() >= release.deadline) {
        const shown = Math.max(0, (reading.freeBytes ?? 0) - release.baseFreeBytes);
        const leak =
          `device free rose by ${shown} bytes within ${waitMs} ms of releasing ${bytes} bytes`;
        records.get(id).leak = leak;
        release.settle(false);
        emit(releaseLeak(id, leak, bytes));
        return;
      }
      clock.setTimeout(poll, this.#o.pollMs ?? 20);
    };
    poll();
  }

  /** Waits (bounded) until the releases of `ids` are confirmed or given up on. */
  async settled(ids: string[]): Promise<void> {
    for (const id of ids) await this.#o.tracker.get(id)?.settled;
  }

  /** How the release of `id` that started at `startedAt` ended, as the offload and unload routes answer it. */
  async outcome(id: string, startedAt: number, bytes: number): Promise<ReleaseOutcome> {
    const { clock } = this.#o;
    const release = this.#o.tracker.get(id);
    if (!release) return { confirmed: true, bytes, ms: clock.now() - startedAt, checked: false };
    const confirmed = await release.settled;
    return { confirmed, bytes: release.bytes, ms: clock.now() - startedAt, checked: true };
  }

  /** Gives up on every release in flight and watches no more (the service stops). */
  close(): void {
    this.#closed = true;
    this.#o.tracker.clear();
  }
}
