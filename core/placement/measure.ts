/**
 * Before/after measurement of one operation (a transition, a test load): wall time, the
 * process's RSS change and the device's used-bytes change, read one way for both the
 * worker host's transition figures and the scheduler's measured loads.
 * @module
 */
import type { Meter } from "./device.ts";

/** The readings a measurement takes before and after (a {@link Meter} has them). */
export type MeasureReadings = Pick<Meter, "rssBytes" | "deviceUsedBytes">;

/** What changed between the start of an operation and its end. */
export interface MeasuredSpan {
  ms: number;
  /** Process RSS at the end (0 without readings). */
  rssAfterBytes: number;
  /** RSS after − before (the whole process: noisy, may be negative). */
  rssDeltaBytes: number;
  /** Device used bytes after − before, or null where no driver reports them. */
  deviceUsedDeltaBytes: number | null;
}

/** A measurement in progress: {@link finish} takes the "after" readings. */
export interface Measurement {
  finish(): MeasuredSpan;
}

/**
 * Takes the "before" readings now. Without `readings` RSS reads 0 and the device's used
 * bytes read null; the "after" device reading is skipped when the "before" one was null.
 */
export function startMeasure(readings: MeasureReadings | undefined): Measurement {
  const started = performance.now();
  const rssBefore = readings?.rssBytes() ?? 0;
  const usedBefore = readings?.deviceUsedBytes() ?? null;
  return {
    finish() {
      const ms = performance.now() - started;
      const usedAfter = usedBefore === null ? null : readings?.deviceUsedBytes() ?? null;
      const rssAfterBytes = readings?.rssBytes() ?? 0;
      return {
        ms,
        rssAfterBytes,
        rssDeltaBytes: rssAfterBytes - rssBefore,
        deviceUsedDeltaBytes: usedBefore === null || usedAfter === null
          ? null
          : usedAfter - usedBefore,
      };
    },
  };
}
