/**
 * A clock for relative times ("12 s ago") that hydrates cleanly: the server and the
 * browser's first render both use the page's render time, so the markup matches; after
 * hydration it ticks with the browser's clock.
 * @module
 */
import { useEffect, useState } from "preact/hooks";

/** What {@link useClock} gives: the time to render with, and whether hydration is over. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now: number;
  /** False on the server and in the hydration render (render nothing that differs there). */
  mounted: boolean;
}

/** The time, starting at `renderedAt` and then ticking every `everyMs` in the browser. */
export function useClock(renderedAt: number, everyMs = 1000): Clock {
  const [clock, setClock] = useState<Clock>({ now: renderedAt, mounted: false });
  useEffect(() => {
    setClock({ now: Date.now(), mounted: true });
    const timer = setInterval(() => setClock({ now: Date.now(), mounted: true }), everyMs);
    return () => clearInterval(timer);
  }, [everyMs]);
  return clock;
}
