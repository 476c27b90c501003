/**
 * A clock for relative times ("12 s ago") that hydrates cleanly: the server and the
 * browser's first render both use the page's render time, so the markup matches; after
 * hydration it ticks with the browser's clock.
 * @module
 */
import { useEffect, useState } from "preact/hooks";

/**
 * What {@link useClock} gives: the time to render with, and whether hydration is over (not
 * core/clock.ts's `Clock`, the injected timer source: this one is a rendered instant).
 */
export interface RenderTime {
  /** Milliseconds since the epoch. */
  now: number;
  /** False on the server and in the hydration render (render nothing that differs there). */
  mounted: boolean;
}

/** The time, starting at `renderedAt` and then ticking every `everyMs` in the browser. */
export function useClock(renderedAt: number, everyMs = 1000): RenderTime {
  const [clock, setClock] = useState<RenderTime>({ now: renderedAt, mounted: false });
  useEffect(() => {
    setClock({ now: Date.now(), mounted: true });
    const timer = setInterval(() => setClock({ now: Date.now(), mounted: true }), everyMs);
    return () => clearInterval(timer);
  }, [everyMs]);
  return clock;
}
