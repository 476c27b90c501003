/**
 * The VRAM monitor: samples its source on an interval, keeps a ring buffer of
 * history, coalesces reads (any number of API clients cause at most one driver query
 * per interval) and tells subscribers when a device's figures change. A device whose
 * driver says it is gone turns `lost`; another driver error turns it `error`; either way
 * it keeps its last figures and recovers on its own.
 * @module
 */
import { RingBuffer } from "../ring_buffer.ts";
import type { DeviceSnapshot, VramSample, VramSourceKind } from "../types.ts";
import type { VramSource } from "./source.ts";
import { type Clock, systemClock, type TimerHandle } from "../clock.ts";

/** How the monitor is set up. */
export interface VramMonitorOptions {
  source: VramSource;
  /** Why no better source is in use, or null. */
  reason: string | null;
  /** Sampling interval (default 1000 ms). */
  sampleMs?: number;
  /** History kept (default one hour). */
  historyMs?: number;
  /** Live GPU bytes tracked in the workers, per device index (0 until pipelines exist). */
  activeBytes?: (deviceIndex: number) => number;
  /** Time and the sampling timer (the system clock; tests pass tests/_fake_clock.ts). */
  clock?: Clock;
}

/** Called with each sample that differs from the one before it. */
export type SampleListener = (sample: VramSample) => void;

/** Samples, remembers and publishes VRAM figures. */
export class VramMonitor {
  readonly source: VramSource;
  readonly reason: string | null;
  readonly sampleMs: number;
  #history: RingBuffer<VramSample>;
  #latest: VramSample | null = null;
  #lastGood = new Map<number, DeviceSnapshot>();
  #listeners = new Set<SampleListener>();
  #timer: TimerHandle | undefined;
  #clock: Clock;
  #activeBytes: (deviceIndex: number) => number;
  #now: () => number;
  #queries = 0;
  /** The read number of each sample (see {@link VramMonitor.seqOf}). */
  #seqs = new WeakMap<VramSample, number>();

  constructor(options: VramMonitorOptions) {
    this.source = options.source;
    this.reason = options.reason;
    this.sampleMs = options.sampleMs ?? 1000;
    const historyMs = options.historyMs ?? 3_600_000;
    this.#history = new RingBuffer(Math.max(1, Math.ceil(historyMs / this.sampleMs)));
    this.#activeBytes = options.activeBytes ?? (() => 0);
    this.#clock = options.clock ?? systemClock;
    this.#now = () => this.#clock.now();
  }

  /** Which source feeds the monitor. */
  get sourceKind(): VramSourceKind {
    return this.source.kind;
  }

  /** How many times the source was read: the cost the coalescing keeps down. */
  get queries(): number {
    return this.#queries;
  }

  /** Starts sampling on the interval (a first sample is taken at once). */
  start(): void {
    if (this.#timer !== undefined) return;
    this.sample();
    const tick = () => {
      // The next tick is set first: a sample that throws does not stop the sampling.
      this.#timer = this.#clock.setTimeout(tick, this.sampleMs);
      this.sample();
    };
    this.#timer = this.#clock.setTimeout(tick, this.sampleMs);
  }

  /** Stops sampling and closes the source; safe to call twice. */
  stop(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#listeners.clear();
    this.source.close();
  }

  /** Lets pipelines report their tracked bytes (set once the PipelineManager exists). */
  setActiveBytes(activeBytes: (deviceIndex: number) => number): void {
    this.#activeBytes = activeBytes;
  }

  /**
   * The latest sample if it is younger than the interval, else a fresh one.
   * This is what request handlers call: a thousand clients cost one driver query.
   */
  current(): VramSample {
    const latest = this.#latest;
    if (latest && this.#now() - latest.takenAt < this.sampleMs) return latest;
    return this.sample();
  }

  /** Reads the source now, records the sample, and notifies subscribers if anything changed. */
  sample(): VramSample {
    const sample = this.peek();
    const previous = this.#latest;
    this.#latest = sample;
    this.#history.push(sample);
    if (!previous || !sameFigures(previous, sample)) {
      for (const listener of this.#listeners) {
        try {
          listener(sample);
        } catch (error) {
          console.error("VRAM monitor: a subscriber threw:", error);
        }
      }
    }
    return sample;
  }

  /**
   * Reads the source now without recording it in the history or telling subscribers:
   * the scheduler's fresh reading for a decision (a driver query, no side effects).
   */
  peek(): VramSample {
    this.#queries++;
    const takenAt = this.#now();
    const devices = this.source.read().map((result): DeviceSnapshot => {
      if (result.ok) {
        const snapshot: DeviceSnapshot = {
          ...result.reading,
          activeBytes: this.#activeBytes(result.reading.index),
          state: "ok",
          takenAt,
        };
        this.#lastGood.set(snapshot.index, snapshot);
        return snapshot;
      }
      const last = this.#lastGood.get(result.index);
      return {
        index: result.index,
        name: last?.name ?? `GPU ${result.index}`,
        uuid: last?.uuid ?? "",
        totalBytes: last?.totalBytes ?? 0,
        usedBytes: last?.usedBytes ?? 0,
        freeBytes: last?.freeBytes ?? 0,
        reservedBytes: last?.reservedBytes ?? 0,
        activeBytes: this.#activeBytes(result.index),
        utilizationPercent: result.lost ? null : last?.utilizationPercent ?? null,
        temperatureC: result.lost ? null : last?.temperatureC ?? null,
        // Only the driver's "GPU is gone" codes mean lost; any other error keeps the
        // last good figures (and the scheduler evicts nothing on them).
        state: result.lost ? "lost" : "error",
        error: result.error,
        takenAt,
      };
    });
    const sample = { takenAt, devices };
    this.#seqs.set(sample, this.#queries);
    return sample;
  }

  /** Which driver read a sample came from (grows with every read): orders samples and peeks. */
  seqOf(sample: VramSample): number {
    return this.#seqs.get(sample) ?? 0;
  }

  /** Calls `listener` with every sample that differs from the previous one; returns the unsubscribe. */
  subscribe(listener: SampleListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** How many subscribers are listening (SSE connections, mostly). */
  get subscriberCount(): number {
    return this.#listeners.size;
  }

  /**
   * The samples of the last `seconds`, reduced to at most `points` (see {@link downsample}).
   * Oldest first.
   */
  history(seconds: number, points: number): VramSample[] {
    const since = this.#now() - seconds * 1000;
    const samples = this.#history.toArray().filter((s) => s.takenAt >= since);
    return downsample(samples, points);
  }
}

/** True when no device's figures differ (the time of the sample is ignored). */
function sameFigures(a: VramSample, b: VramSample): boolean {
  if (a.devices.length !== b.devices.length) return false;
  return a.devices.every((device, i) => {
    const other = b.devices[i];
    return device.index === other.index && device.usedBytes === other.usedBytes &&
      device.totalBytes === other.totalBytes && device.freeBytes === other.freeBytes &&
      device.reservedBytes === other.reservedBytes && device.activeBytes === other.activeBytes &&
      String(device.reservedFrom) === String(other.reservedFrom) &&
      device.utilizationPercent === other.utilizationPercent &&
      device.temperatureC === other.temperatureC && device.state === other.state &&
      device.error === other.error && device.name === other.name;
  });
}

/**
 * Reduces samples to at most `points` by cutting them into equal runs and keeping, per
 * device, the run's highest used bytes (and lowest free bytes): a spike must survive
 * downsampling, since a spike is what runs a GPU out of memory. Other fields come from
 * the run's last sample, and so does its time.
 */
export function downsample(samples: VramSample[], points: number): VramSample[] {
  if (points < 1) throw new RangeError(`points must be at least 1, got ${points}`);
  if (samples.length <= points) return samples;
  const out: VramSample[] = [];
  for (let bucket = 0; bucket < points; bucket++) {
    const from = Math.floor((bucket * samples.length) / points);
    const to = Math.floor(((bucket + 1) * samples.length) / points);
    const run = samples.slice(from, to);
    const last = run[run.length - 1];
    out.push({
      takenAt: last.takenAt,
      devices: last.devices.map((device) => {
        let usedBytes = device.usedBytes;
        let freeBytes = device.freeBytes;
        let activeBytes = device.activeBytes;
        for (const sample of run) {
          const same = sample.devices.find((d) => d.index === device.index);
          if (!same) continue;
          usedBytes = Math.max(usedBytes, same.usedBytes);
          freeBytes = Math.min(freeBytes, same.freeBytes);
          activeBytes = Math.max(activeBytes, same.activeBytes);
        }
        return { ...device, usedBytes, freeBytes, activeBytes };
      }),
    });
  }
  return out;
}
