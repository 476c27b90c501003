/**
 * Settled releases (ollama's waitForVRAMRecovery): after an offload or unload of at least
 * {@link RELEASE_CHECK_MIN_BYTES}, the bytes count as `releasing` until the driver's free
 * figure shows them back. Until then they are added to the free figure, so no later pass
 * evicts again for the same shortfall; past the wait (default 2 s) the release is
 * flagged as a leak and stops counting.
 * @module
 */

/** Below this, a release is not checked against the driver: allocators keep small blocks cached. */
export const RELEASE_CHECK_MIN_BYTES = 16 * 2 ** 20;

/** How long a release may take to show in the driver's figures before it is called a leak. */
export const DEFAULT_RELEASE_WAIT_MS = 2000;

/** One release the driver has not shown yet. */
export interface PendingRelease {
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

/** How a release ended, as the offload and unload routes answer it. */
export interface ReleaseOutcome {
  /** True when the driver showed the bytes back; false when the wait ran out (a leak). */
  confirmed: boolean;
  bytes: number;
  /** Time from the release to the answer. */
  ms: number;
  /** Null without a driver that reports used memory, or below the check's minimum. */
  checked: boolean;
}

/** The releases in flight. */
export class ReleaseTracker {
  readonly #pending = new Map<string, PendingRelease>();

  /** Starts counting `bytes` of `id` as releasing. */
  start(
    id: string,
    bytes: number,
    baseFreeBytes: number,
    afterSeq: number,
    now: number,
    waitMs: number,
  ): PendingRelease {
    this.#pending.get(id)?.settle(false);
    let settle!: (confirmed: boolean) => void;
    const settled = new Promise<boolean>((resolve) => (settle = resolve));
    const release: PendingRelease = {
      id,
      bytes,
      baseFreeBytes,
      afterSeq,
      startedAt: now,
      deadline: now + waitMs,
      settled,
      settle: (confirmed) => {
        if (this.#pending.get(id) === release) this.#pending.delete(id);
        settle(confirmed);
      },
    };
    this.#pending.set(id, release);
    return release;
  }

  /** The release of `id` in flight, if any. */
  get(id: string): PendingRelease | undefined {
    return this.#pending.get(id);
  }

  /** Bytes of `release` the driver does not show yet, given its free figure now. */
  static unshown(release: PendingRelease, freeBytesNow: number): number {
    const shown = freeBytesNow - release.baseFreeBytes;
    return Math.max(0, Math.min(release.bytes, release.bytes - shown));
  }

  /**
   * Bytes released but not shown by the driver in `reading`, summed over the releases in
   * flight that it was taken after (an older reading still counts them as ours).
   */
  unshownBytes(reading: { freeBytes: number; seq: number }): number {
    let sum = 0;
    for (const release of this.#pending.values()) {
      if (reading.seq > release.afterSeq) {
        sum += ReleaseTracker.unshown(release, reading.freeBytes);
      }
    }
    return sum;
  }

  /** Bytes counted as releasing (whatever the driver shows). */
  get releasingBytes(): number {
    let sum = 0;
    for (const release of this.#pending.values()) sum += release.bytes;
    return sum;
  }

  /** Every release in flight. */
  list(): PendingRelease[] {
    return [...this.#pending.values()];
  }

  /** Settles the release of `id` as confirmed when at least half its bytes show; answers whether it did. */
  confirmIfShown(release: PendingRelease, freeBytesNow: number): boolean {
    if (ReleaseTracker.unshown(release, freeBytesNow) * 2 > release.bytes) return false;
    release.settle(true);
    return true;
  }

  /** Gives up on every release (the service stops). */
  clear(): void {
    for (const release of [...this.#pending.values()]) release.settle(false);
  }
}
