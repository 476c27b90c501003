/**
 * Events seen across successive VRAM reports, each once: what `deno task stress` and
 * `deno task pressure` tell about the run (the API calls themselves go through the one
 * client, api_client/mod.ts).
 * @module
 */
import type { HeadroomEvent, VramReport } from "../../core/types.ts";

/** Collects events from successive reports, each once (by `seq`), after a starting `seq`. */
export class EventCollector {
  #after: number;
  #seen = new Map<number, HeadroomEvent>();
  #gaps = false;
  #highest: number;

  /** Keeps only events numbered above `afterSeq` (the newest one seen before the run). */
  constructor(afterSeq: number) {
    this.#after = afterSeq;
    this.#highest = afterSeq;
  }

  /** The newest event number in a report (0 when it has none). */
  static newestSeq(report: VramReport): number {
    return Math.max(0, ...(report.events ?? []).map((e) => e.seq));
  }

  /** Adds a report's events; notes a gap when the report's window skipped some. */
  add(report: VramReport): void {
    const events = report.events ?? [];
    const fresh = events.filter((e) => e.seq > this.#after && !this.#seen.has(e.seq));
    if (fresh.length > 0) {
      const oldest = Math.min(...events.map((e) => e.seq));
      if (oldest > this.#highest + 1) this.#gaps = true;
    }
    for (const event of fresh) {
      this.#seen.set(event.seq, event);
      this.#highest = Math.max(this.#highest, event.seq);
    }
  }

  /** Every event collected, oldest first. */
  events(): HeadroomEvent[] {
    return [...this.#seen.values()].sort((a, b) => a.seq - b.seq);
  }

  /** True when some events went by between two polls unseen (the report holds the newest 20). */
  get missedSome(): boolean {
    return this.#gaps;
  }

  /**
   * How many events of each kind were collected, kinds in the order they first
   * happened (by `seq`, not by which poll saw them: the same run reads the same).
   */
  countsByKind(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const event of this.events()) counts[event.kind] = (counts[event.kind] ?? 0) + 1;
    return counts;
  }
}
