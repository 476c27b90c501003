/**
 * Time as the scheduler reads it, injected so tests control it (std's FakeTime idea):
 * the current time and one-shot timers. Production uses {@link systemClock}; tests use
 * `tests/_fake_clock.ts`, which only moves when told.
 * @module
 */

/** A handle of a timer set with {@link Clock.setTimeout}. */
export type TimerHandle = number | ReturnType<typeof setTimeout>;

/** The current time and one-shot timers. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Calls `fn` once after `ms`; the timer never keeps the process alive. */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

/** The real clock: Date.now and unref'd timers. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const handle = setTimeout(fn, ms);
    Deno.unrefTimer(handle);
    return handle;
  },
  clearTimeout: (handle) => clearTimeout(handle as number),
};
