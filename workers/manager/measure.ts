/**
 * A transition's figures ({@link TransitionFigures}): time, RSS and device-used changes
 * measured by core's {@link startMeasure} (the same measurement test loads use), plus
 * what the worker's status says after the move.
 * @module
 */
import { type MeasureReadings, startMeasure } from "../../core/placement/measure.ts";
import type { TransitionFigures } from "../../core/types.ts";
import type { WorkerStatus } from "../../core/pipelines/protocol.ts";

/** A transition being measured: `done` takes the "after" figures. */
export interface TransitionMeasure {
  /** The figures of `kind`, with the worker's status after it (null when it gave none). */
  done(kind: string, status: WorkerStatus | null): TransitionFigures;
}

/** The readings of this process: its RSS, and the device's used bytes where a driver tells them. */
export function processReadings(deviceUsedBytes?: () => number | null): MeasureReadings {
  return {
    rssBytes: () => Deno.memoryUsage().rss,
    deviceUsedBytes: () => deviceUsedBytes?.() ?? null,
  };
}

/** Takes the "before" figures of a transition now. */
export function startTransition(readings: MeasureReadings): TransitionMeasure {
  const measure = startMeasure(readings);
  return {
    done(kind, status) {
      const span = measure.finish();
      return {
        kind,
        ms: span.ms,
        gpuBytes: status?.gpuBytes ?? 0,
        ramBytes: status?.ramBytes ?? 0,
        rssDeltaBytes: span.rssDeltaBytes,
        deviceUsedDeltaBytes: span.deviceUsedDeltaBytes,
        at: Date.now(),
      };
    },
  };
}
