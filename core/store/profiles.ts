/**
 * Saved memory profiles and the event log in Deno KV: per model, device kind and
 * input shape, the last measured VRAM (tracked and NVML delta), RAM, and transition
 * times. They survive restarts and unloads, feed the budget's estimates, and let the
 * dashboard show last-known figures for unloaded models. The same code opens a local
 * file (the default, under the data dir) or a remote KV by URL.
 * @module
 */
import type { HeadroomEvent, MemoryProfile, StoreHealth, TransitionFigures } from "../types.ts";
import type { Chain } from "../pipelines/chains.ts";
import { DataDirLock } from "./data_dir_lock.ts";
import { StorageError } from "./storage_error.ts";

export type { MemoryProfile };

/** Events kept in KV (the newest this many). */
export const MAX_STORED_EVENTS = 2000;

/** The KV-backed store of profiles and events, with an in-memory copy of the profiles for hot reads. */
export class ProfileStore implements AsyncDisposable {
  readonly #kv: Deno.Kv;
  readonly #lock: DataDirLock | null;
  readonly #profiles = new Map<string, MemoryProfile>();
  readonly #health: StoreHealth = {
    state: "ok",
    droppedWrites: 0,
    droppedEvents: 0,
    skippedValues: 0,
    lastError: null,
  };
  #nextEventSeq = 1;
  #closed = false;

  private constructor(kv: Deno.Kv, lock: DataDirLock | null) {
    this.#kv = kv;
    this.#lock = lock;
  }

  /**
   * Opens the store at `pathOrUrl` (a file path, a remote KV URL, or ":memory:") and loads
   * the profiles. A local file is locked first (a second service on it is refused, naming
   * the other's pid); a file that does not open or read throws a one-line StorageError.
   */
  static async open(pathOrUrl: string): Promise<ProfileStore> {
    const local = pathOrUrl !== ":memory:" && !/^[a-z][a-z0-9+.-]*:\/\//i.test(pathOrUrl);
    const lock = local ? DataDirLock.acquire(`${pathOrUrl}.lock`, pathOrUrl) : null;
    let store: ProfileStore | null = null;
    try {
      store = new ProfileStore(await Deno.openKv(pathOrUrl), lock);
      for await (const entry of store.#kv.list<MemoryProfile>({ prefix: ["profile"] })) {
        if (!isProfile(entry.value)) {
          store.#health.skippedValues++;
          continue;
        }
        store.#profiles.set(
          profileKey(entry.value.modelId, entry.value.device, entry.value.shape),
          entry.value,
        );
      }
      for await (
        const entry of store.#kv.list({ prefix: ["event"] }, { reverse: true, limit: 1 })
      ) {
        store.#nextEventSeq = Number(entry.key[1]) + 1;
      }
      return store;
    } catch (error) {
      store?.close();
      lock?.release();
      throw new StorageError(
        `Headroom: the data file ${pathOrUrl} cannot be read (${
          (error as Error).message.split("\n")[0]
        }): move it aside (mv ${pathOrUrl} ${pathOrUrl}.bad) to start with no saved ` +
          `profiles or events, or start with another --data-dir`,
      );
    }
  }

  /** What the store could not do since start (a copy). */
  health(): StoreHealth {
    return { ...this.#health };
  }

  /** Counts a failed write and keeps its error; the caller goes on without it. */
  #dropped(what: "event" | "profile" | "chain", error: unknown): void {
    this.#health.state = "degraded";
    this.#health.droppedWrites++;
    if (what === "event") this.#health.droppedEvents++;
    const message = (error as Error)?.message ?? String(error);
    if (this.#health.droppedWrites === 1 || this.#health.droppedWrites % 100 === 0) {
      console.error(
        `Headroom: ${this.#health.droppedWrites} write(s) to KV not kept (last: a ${what}): ${message}`,
      );
    }
    this.#health.lastError = `${what} not kept: ${message}`;
  }

  /** A write went through: the store is healthy again (the counts stay). */
  #kept(): void {
    this.#health.state = "ok";
  }

  /** The profile of a model on a device kind and shape, or null when never measured. */
  get(modelId: string, device: "gpu" | "cpu", shape = "default"): MemoryProfile | null {
    return this.#profiles.get(profileKey(modelId, device, shape)) ?? null;
  }

  /** Every saved profile. */
  all(): MemoryProfile[] {
    return [...this.#profiles.values()];
  }

  /**
   * Folds a transition's figures into the model's profile and writes it. Resolves once
   * KV has acknowledged the write (a kill after that loses nothing).
   */
  async recordTransition(
    modelId: string,
    figures: TransitionFigures,
    peakBytes: number,
    shape = "default",
  ): Promise<MemoryProfile> {
    const device = figures.kind === "load:cpu" || figures.kind === "offload" ? "cpu" : "gpu";
    const gpuKey = profileKey(modelId, "gpu", shape);
    // GPU figures (load bytes, offload and rehydrate times) all belong to the GPU profile.
    const target = figures.kind === "offload" ? "gpu" : device;
    const key = target === "gpu" ? gpuKey : profileKey(modelId, "cpu", shape);
    const previous = this.#profiles.get(key);
    const next: MemoryProfile = {
      modelId,
      device: target,
      shape,
      gpuLoadBytes: previous?.gpuLoadBytes ?? null,
      gpuPeakBytes: previous?.gpuPeakBytes ?? null,
      deviceUsedDeltaBytes: previous?.deviceUsedDeltaBytes ?? null,
      rssDeltaBytes: previous?.rssDeltaBytes ?? null,
      ramBytes: previous?.ramBytes ?? null,
      loadMs: previous?.loadMs ?? null,
      offloadMs: previous?.offloadMs ?? null,
      rehydrateMs: previous?.rehydrateMs ?? null,
      measuredAt: figures.at,
    };
    if (figures.kind.startsWith("load:")) {
      next.loadMs = figures.ms;
      next.rssDeltaBytes = figures.rssDeltaBytes;
      next.ramBytes = figures.ramBytes ?? null;
      if (target === "gpu") {
        next.gpuLoadBytes = figures.gpuBytes;
        next.deviceUsedDeltaBytes = figures.deviceUsedDeltaBytes;
        next.gpuPeakBytes = Math.max(figures.gpuBytes, peakBytes);
      }
    } else if (figures.kind === "offload") {
      next.offloadMs = figures.ms;
      if (peakBytes > 0) next.gpuPeakBytes = peakBytes;
    } else if (figures.kind === "rehydrate") {
      next.rehydrateMs = figures.ms;
      next.gpuLoadBytes = figures.gpuBytes;
    }
    await this.save(next);
    return next;
  }

  /**
   * Writes a profile as given (awaits KV's acknowledgement). A failed write (a full disk)
   * is counted in {@link health} and not thrown: the move it measures did happen, and the
   * profile is kept in memory for this run.
   */
  async save(profile: MemoryProfile): Promise<void> {
    this.#profiles.set(profileKey(profile.modelId, profile.device, profile.shape), profile);
    if (this.#closed) return;
    try {
      await this.#kv.set(["profile", profile.modelId, profile.device, profile.shape], profile);
      this.#kept();
    } catch (error) {
      if (!this.#closed) this.#dropped("profile", error);
    }
  }

  /** Records a new peak for a model on the GPU if it is higher than the saved one. */
  async notePeak(modelId: string, peakBytes: number, shape = "default"): Promise<void> {
    const profile = this.get(modelId, "gpu", shape);
    if (!profile || (profile.gpuPeakBytes ?? 0) >= peakBytes) return;
    await this.save({ ...profile, gpuPeakBytes: peakBytes, measuredAt: Date.now() });
  }

  /**
   * Appends an event and drops the oldest beyond {@link MAX_STORED_EVENTS}. A failed write
   * is counted in {@link health} (dropped events) and not thrown.
   */
  async appendEvent(event: HeadroomEvent): Promise<void> {
    if (this.#closed) return;
    const seq = this.#nextEventSeq++;
    const stale = seq - MAX_STORED_EVENTS;
    const op = this.#kv.atomic().set(["event", seq], event);
    if (stale > 0) op.delete(["event", stale]);
    try {
      await op.commit();
      this.#kept();
    } catch (error) {
      if (this.#closed) return; // the service stopped while this write was on its way
      this.#dropped("event", error);
    }
  }

  /** The newest `limit` stored events, newest first; values that are not events are skipped and counted. */
  async recentEvents(limit = 100): Promise<HeadroomEvent[]> {
    const out: HeadroomEvent[] = [];
    for await (
      const entry of this.#kv.list<HeadroomEvent>({ prefix: ["event"] }, { reverse: true, limit })
    ) {
      if (isEvent(entry.value)) out.push(entry.value);
      else this.#health.skippedValues++;
    }
    return out;
  }

  /** Saves a chain (replacing one of the same id); a failed write is counted and thrown. */
  async saveChain(chain: Chain): Promise<void> {
    try {
      await this.#kv.set(["chain", chain.id], chain);
      this.#kept();
    } catch (error) {
      this.#dropped("chain", error);
      throw error;
    }
  }

  /** Every saved chain; values that are not chains are skipped and counted. */
  async chains(): Promise<Chain[]> {
    const out: Chain[] = [];
    for await (const entry of this.#kv.list<Chain>({ prefix: ["chain"] })) {
      const value = entry.value as unknown as Record<string, unknown> | null;
      if (typeof value === "object" && value !== null && typeof value.id === "string") {
        out.push(entry.value);
      } else this.#health.skippedValues++;
    }
    return out;
  }

  /** Closes KV and gives the data dir's lock back; safe to call twice. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#kv.close();
    this.#lock?.release();
  }

  /** Same as close. */
  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }
}

/** True for a value this version wrote as a profile. */
function isProfile(value: unknown): value is MemoryProfile {
  const v = value as Record<string, unknown> | null;
  return typeof v === "object" && v !== null && typeof v.modelId === "string" &&
    (v.device === "gpu" || v.device === "cpu") && typeof v.shape === "string";
}

/** True for a value this version wrote as an event. */
function isEvent(value: unknown): value is HeadroomEvent {
  const v = value as Record<string, unknown> | null;
  return typeof v === "object" && v !== null && typeof v.seq === "number" &&
    typeof v.at === "number" && typeof v.kind === "string" && typeof v.message === "string";
}

function profileKey(modelId: string, device: string, shape: string): string {
  return `${modelId}\u0000${device}\u0000${shape}`;
}
