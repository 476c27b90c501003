/**
 * A clock for tests that only moves when told (std's FakeTime idea): `now()` and one-shot
 * timers; `tick(ms)` moves time forward and fires every timer that falls due, in order,
 * letting promises settle after each.
 */
import type { Clock, TimerHandle } from "../core/clock.ts";

interface Timer {
  id: number;
  at: number;
  fn: () => void;
}

/** A {@link Clock} under the test's control. */
export class FakeClock implements Clock {
  ms: number;
  #timers: Timer[] = [];
  #nextId = 1;

  constructor(start = 1_000_000) {
    this.ms = start;
  }

  now = (): number => this.ms;

  setTimeout = (fn: () => void, ms: number): TimerHandle => {
    const id = this.#nextId++;
    this.#timers.push({ id, at: this.ms + Math.max(0, ms), fn });
    return id;
  };

  clearTimeout = (handle: TimerHandle): void => {
    this.#timers = this.#timers.filter((t) => t.id !== handle);
  };

  /** Moves time without firing anything (for idle times). */
  advance(ms: number): void {
    this.ms += ms;
  }

  /** Timers still waiting. */
  get pending(): number {
    return this.#timers.length;
  }

  /** Moves time forward by `ms`, firing each timer that falls due (and any it sets) in order. */
  async tick(ms: number): Promise<void> {
    const end = this.ms + ms;
    for (;;) {
      await settle();
      this.#timers.sort((a, b) => a.at - b.at || a.id - b.id);
      const next = this.#timers[0];
      if (!next || next.at > end) break;
      this.#timers.shift();
      this.ms = Math.max(this.ms, next.at);
      next.fn();
    }
    this.ms = end;
    await settle();
  }
}

/** Lets pending promise callbacks run (a few macrotask turns). */
export async function settle(turns = 3): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((resolve) => setTimeout(resolve, 0));
}
