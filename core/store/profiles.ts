/**
 * Saved memory profiles and the event log in Deno KV: per model, device kind and
 * input shape, the last measured VRAM (tracked and NVML delta), RAM, and transition
 * times. They survive restarts and unloads, feed the budget's estimates, and let the
 * dashboard show last-known figures for unloaded models. The same code opens a local
 * file (the default, under the data dir) or a remote KV by URL.
 * @module
 */
import type { HeadroomEvent, MemoryProfile, TransitionFigures } from "../types.ts";
import type { Chain } from "../pipelines/chains.ts";

export type { MemoryProfile };

/** Events kept in KV (the newest this many). */
export const MAX_STORED_EVENTS = 2000;

/** The KV-backed store of profiles and events, with an in-memory copy of the profiles for hot reads. */
export class ProfileStore implements AsyncDisposable {
  readonly #kv: Deno.Kv;
  readonly #profiles = new Map<string, MemoryProfile>();
  #nextEventSeq = 1;
  #closed = false;

  private constructor(kv: Deno.Kv) {
    this.#kv = kv;
  }

  /** Opens the store at `pathOrUrl` (a file path, a remote KV URL, or ":memory:") and loads the profiles. */
  static async open(pathOrUrl: string): Promise<ProfileStore> {
    const store = new ProfileStore(await Deno.openKv(pathOrUrl));
    for await (const entry of store.#kv.list<MemoryProfile>({ prefix: ["profile"] })) {
      store.#profiles.set(
        profileKey(entry.value.modelId, entry.value.device, entry.value.shape),
        entry.value,
      );
    }
    for await (const entry of store.#kv.list({ prefix: ["event"] }, { reverse: true, limit: 1 })) {
      store.#nextEventSeq = Number(entry.key[1]) + 1;
    }
    return store;
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

  /** Writes a profile as given (awaits KV's acknowledgement). */
  async save(profile: MemoryProfile): Promise<void> {
    await this.#kv.set(["profile", profile.modelId, profile.device, profile.shape], profile);
    this.#profiles.set(profileKey(profile.modelId, profile.device, profile.shape), profile);
  }

  /** Records a new peak for a model on the GPU if it is higher than the saved one. */
  async notePeak(modelId: string, peakBytes: number, shape = "default"): Promise<void> {
    const profile = this.get(modelId, "gpu", shape);
    if (!profile || (profile.gpuPeakBytes ?? 0) >= peakBytes) return;
    await this.save({ ...profile, gpuPeakBytes: peakBytes, measuredAt: Date.now() });
  }

  /** Appends an event and drops the oldest beyond {@link MAX_STORED_EVENTS}. */
  async appendEvent(event: HeadroomEvent): Promise<void> {
    if (this.#closed) return;
    const seq = this.#nextEventSeq++;
    const stale = seq - MAX_STORED_EVENTS;
    const op = this.#kv.atomic().set(["event", seq], event);
    if (stale > 0) op.delete(["event", stale]);
    try {
      await op.commit();
    } catch (error) {
      if (this.#closed) return; // the service stopped while this write was on its way
      throw error;
    }
  }

  /** The newest `limit` stored events, newest first. */
  async recentEvents(limit = 100): Promise<HeadroomEvent[]> {
    const out: HeadroomEvent[] = [];
    for await (
      const entry of this.#kv.list<HeadroomEvent>({ prefix: ["event"] }, { reverse: true, limit })
    ) {
      out.push(entry.value);
    }
    return out;
  }

  /** Saves a chain (replacing one of the same id). */
  async saveChain(chain: Chain): Promise<void> {
    await this.#kv.set(["chain", chain.id], chain);
  }

  /** Every saved chain. */
  async chains(): Promise<Chain[]> {
    const out: Chain[] = [];
    for await (const entry of this.#kv.list<Chain>({ prefix: ["chain"] })) out.push(entry.value);
    return out;
  }

  /** Closes KV; safe to call twice. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#kv.close();
  }

  /** Same as close. */
  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }
}

function profileKey(modelId: string, device: string, shape: string): string {
  return `${modelId}\u0000${device}\u0000${shape}`;
}
