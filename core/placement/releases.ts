/**
 * Releases (ollama's waitForVRAMRecovery): after an offload or unload of at least
 * {@link RELEASE_CHECK_MIN_BYTES}, the bytes count as releasing until the driver's free
 * figure shows them back, polled on the scheduler's clock. Until then they are added to
 * the free figure, so no later pass evicts again for the same shortfall; once shown, a
 * "release" event; past the wait (default 2 s) the pipeline's record is marked leaking, a
 * "leak" event, and the bytes stop counting.
 *
 * A release the driver cannot show (a driver that never showed the pipeline's bytes
 * arrive, such as the NVML double while the sessions live on the software adapter, or one
 * too small to check) is not waited for, but its bytes count as freed while the driver's
 * free figure stays where it was: a later pass does not evict another pipeline for the same
 * shortfall (issue 21 item 5).
 * @module
 */
import type { Clock } from "../clock.ts";
import { type Emit, releaseConfirmed, releaseLeak } from "./events.ts";
import type { DeviceView, GpuReading, PipelineRecord, ReleaseOutcome } from "./types.ts";

/** Below this, a release is not checked against the driver: allocators keep small blocks cached. */
export const RELEASE_CHECK_MIN_BYTES = 16 * 2 ** 20;

/** How long a release may take to show in the driver's figures before it is called a leak. */
export const DEFAULT_RELEASE_WAIT_MS = 2000;

/** How often a release is checked against the driver. */
export const DEFAULT_RELEASE_POLL_MS = 20;

/** One release the driver has not shown yet. */
interface PendingRelease {
  id: string;
  bytes: number;
  /** The driver's free bytes just before the release. */
  baseFreeBytes: number;
  /** The device reading number once our tracked bytes fell: later readings count it as unshown. */
  afterSeq: number;
  startedAt: number;
  /** When it is given up on (a leak). */
  deadline: number;
  /** Settles when it is confirmed (true) or given up on (false). */
  settled: Promise<boolean>;
  settle: (confirmed: boolean) => void;
}

/** A release the driver cannot show, counted as freed while its free figure stays put. */
interface UnshownRelease {
  bytes: number;
  /** The driver's free bytes just before the release. */
  baseFreeBytes: number;
  /** As {@link PendingRelease.afterSeq}. */
  afterSeq: number;
}

/** How {@link Releases.track} took a release: watched against the driver, counted as freed unseen, or neither. */
export type ReleaseTracking = "watched" | "unshown" | "none";

/** The releases in flight, each watched against the driver until confirmed or given up on. */
export class Releases {
  readonly #pending = new Map<string, PendingRelease>();
  readonly #unshown = new Map<string, UnshownRelease>();
  readonly #device: DeviceView;
  readonly #clock: Clock;
  readonly #emit: Emit;
  readonly #waitMs: number;
  readonly #pollMs: number;
  #closed = false;

  constructor(
    device: DeviceView,
    clock: Clock,
    emit: Emit,
    timing: { waitMs?: number; pollMs?: number } = {},
  ) {
    this.#device = device;
    this.#clock = clock;
    this.#emit = emit;
    this.#waitMs = timing.waitMs ?? DEFAULT_RELEASE_WAIT_MS;
    this.#pollMs = timing.pollMs ?? DEFAULT_RELEASE_POLL_MS;
  }

  /** Bytes counted as releasing (whatever the driver shows). */
  get releasingBytes(): number {
    let sum = 0;
    for (const release of this.#pending.values()) sum += release.bytes;
    return sum;
  }

  /**
   * Bytes released but not shown by the driver in `reading`, summed over the releases in
   * flight that it was taken after (an older reading still counts them as ours).
   */
  unshownBytes(reading: { freeBytes: number; seq: number }): number {
    let sum = 0;
    for (const release of this.#pending.values()) {
      if (reading.seq > release.afterSeq) sum += unshown(release, reading.freeBytes);
    }
    for (const [id, release] of this.#unshown) {
      if (reading.seq <= release.afterSeq) continue;
      // The driver's figure moved by half the bytes or more: it showed them, or the device
      // changed since (a new shortfall); either way the credit ends.
      if (Math.abs(reading.freeBytes - release.baseFreeBytes) * 2 >= release.bytes) {
        this.#unshown.delete(id);
      } else sum += release.bytes;
    }
    return sum;
  }

  /**
   * Counts `bytes` given back by `record`'s pipeline as releasing until the driver shows
   * them; `before` is the reading taken just before the move. Readings without a driver
   * that shows releases are not watched ("none"). Small releases and pipelines whose loads
   * the driver never saw are not waited for: their bytes count as freed while the driver's
   * free figure stays where it was ("unshown").
   */
  track(record: PipelineRecord, bytes: number, before: GpuReading): ReleaseTracking {
    const id = record.id;
    this.#unshown.delete(id);
    if (!before.confirmsReleases || before.state !== "ok" || bytes <= 0) return "none";
    // Readings up to this one were taken before our tracked bytes fell: their drift already
    // counts the release. Later ones do not, until the driver shows it.
    const after = this.#device.read("fresh");
    if (bytes < RELEASE_CHECK_MIN_BYTES || record.driverSeesLoads === false) {
      this.#unshown.set(id, { bytes, baseFreeBytes: before.freeBytes, afterSeq: after.seq });
      return "unshown";
    }
    const clock = this.#clock;
    const release = this.#start(id, bytes, before.freeBytes, after.seq);
    const poll = () => {
      if (this.#closed) return release.settle(false);
      const reading = this.#device.read("fresh");
      if (reading.state === "ok" && unshown(release, reading.freeBytes) * 2 <= release.bytes) {
        release.settle(true);
        this.#emit(releaseConfirmed(id, bytes, clock.now() - release.startedAt));
        record.leak = null;
        return;
      }
      if (clock.now() >= release.deadline) {
        const shown = Math.max(0, (reading.freeBytes ?? 0) - release.baseFreeBytes);
        const leak =
          `device free rose by ${shown} bytes within ${this.#waitMs} ms of releasing ${bytes} bytes`;
        record.leak = leak;
        release.settle(false);
        this.#emit(releaseLeak(id, leak, bytes));
        return;
      }
      clock.setTimeout(poll, this.#pollMs);
    };
    poll();
    return "watched";
  }

  /** `id` holds GPU bytes again: a release of it the driver could not show counts no more. */
  forget(id: string): void {
    this.#unshown.delete(id);
  }

  /** Waits (bounded) until the releases of `ids` are confirmed or given up on. */
  async settled(ids: string[]): Promise<void> {
    for (const id of ids) await this.#pending.get(id)?.settled;
  }

  /** How the release of `id` that started at `startedAt` ended, as the offload and unload routes answer it. */
  async outcome(id: string, startedAt: number, bytes: number): Promise<ReleaseOutcome> {
    const clock = this.#clock;
    const release = this.#pending.get(id);
    if (!release) return { confirmed: true, bytes, ms: clock.now() - startedAt, checked: false };
    const confirmed = await release.settled;
    return { confirmed, bytes: release.bytes, ms: clock.now() - startedAt, checked: true };
  }

  /** Gives up on every release in flight and watches no more (the service stops). */
  close(): void {
    this.#closed = true;
    this.#unshown.clear();
    for (const release of [...this.#pending.values()]) release.settle(false);
  }

  /** Starts counting `bytes` of `id` as releasing (a newer release of it replaces the older). */
  #start(id: string, bytes: number, baseFreeBytes: number, afterSeq: number): PendingRelease {
    this.#pending.get(id)?.settle(false);
    const now = this.#clock.now();
    let settle!: (confirmed: boolean) => void;
    const settled = new Promise<boolean>((resolve) => (settle = resolve));
    const release: PendingRelease = {
      id,
      bytes,
      baseFreeBytes,
      afterSeq,
      startedAt: now,
      deadline: now + this.#waitMs,
      settled,
      settle: (confirmed) => {
        if (this.#pending.get(id) === release) this.#pending.delete(id);
        settle(confirmed);
      },
    };
    this.#pending.set(id, release);
    return release;
  }
}

/** Bytes of `release` the driver does not show yet, given its free figure now. */
function unshown(release: PendingRelease, freeBytesNow: number): number {
  const shown = freeBytesNow - release.baseFreeBytes;
  return Math.max(0, Math.min(release.bytes, release.bytes - shown));
}
