/**
 * Counters and histograms kept from the event log since the service started: evictions
 * by reason, out-of-memory retries, loads by device and result, exclusive mode's
 * auto-switches, and the seconds each load, offload and rehydrate took. The log itself
 * is a bounded ring; these totals never drop an event.
 * @module
 */
import type { EventLog } from "../../core/events.ts";
import type { EvictionReason, HeadroomEvent, TransitionKind } from "../../core/types.ts";
import { Histogram } from "../../core/histogram.ts";

/** Eviction reasons, each exported from the start (0 until one happens). */
export const EVICTION_REASONS: readonly EvictionReason[] = ["make_room", "oom", "headroom"];
/** Devices a pipeline loads on. */
export const DEVICES = ["gpu", "cpu"] as const;

/** The device of each fresh load; the other moves are not loads. */
const LOAD_DEVICE: Partial<Record<TransitionKind, (typeof DEVICES)[number]>> = {
  "load:gpu": "gpu",
  "load:cpu": "cpu",
};

/** Totals of what the event log saw. */
export class EventCounters {
  /** Evictions by reason ("make_room", "oom", "headroom"). */
  readonly evictions = new Map<string, number>(EVICTION_REASONS.map((r) => [r, 0]));
  /** Out-of-memory errors each followed by a retry or a fallback. */
  oomRetries = 0;
  /** Loads by "device/result". */
  readonly loads = new Map<string, number>(
    DEVICES.flatMap((d) => [[`${d}/success`, 0], [`${d}/failure`, 0]]),
  );
  /** Requests that switched the exclusive model implicitly. */
  autoSwitches = 0;
  /** Release leaks flagged. */
  leaks = 0;
  /** Seconds per load, by device. */
  readonly loadSeconds = new Histogram();
  readonly offloadSeconds = new Histogram();
  readonly rehydrateSeconds = new Histogram();
  readonly #unsubscribe: () => void;

  constructor(events: EventLog) {
    for (const device of DEVICES) this.loadSeconds.touch({ device });
    this.offloadSeconds.touch();
    this.rehydrateSeconds.touch();
    this.#unsubscribe = events.subscribe((event) => this.count(event));
  }

  /** Counts one event (called for every event the log emits), from its typed fields only. */
  count(event: HeadroomEvent): void {
    switch (event.kind) {
      case "eviction":
        this.evictions.set(event.reasonCode, (this.evictions.get(event.reasonCode) ?? 0) + 1);
        return;
      case "oom":
        this.oomRetries++;
        return;
      case "auto-switch":
        this.autoSwitches++;
        return;
      case "leak":
        this.leaks++;
        return;
      case "transition": {
        const { figures } = event;
        const seconds = figures.ms / 1000;
        const device = LOAD_DEVICE[figures.kind];
        if (device) {
          this.#bump(`${device}/success`);
          this.loadSeconds.observe(seconds, { device });
        } else if (figures.kind === "offload") this.offloadSeconds.observe(seconds);
        else if (figures.kind === "rehydrate") this.rehydrateSeconds.observe(seconds);
        return;
      }
      case "info":
      case "failure": {
        const device = event.attempt && LOAD_DEVICE[event.attempt];
        if (device) this.#bump(`${device}/failure`);
        return;
      }
    }
  }

  #bump(key: string): void {
    this.loads.set(key, (this.loads.get(key) ?? 0) + 1);
  }

  /** Stops counting. */
  close(): void {
    this.#unsubscribe();
  }
}
