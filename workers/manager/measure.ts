/**
 * A transition's figures ({@link TransitionFigures}): time, RSS and device-used changes
 * measured by core's {@link startMeasure} (the same measurement test loads use), plus
 * what the worker's status says after the move.
 * @module
 */
import { startMeasure } from "../../core/placement/measure.ts";
import type { Meter } from "../../core/placement/types.ts";
import type { TransitionFigures, TransitionKind } from "../../core/types.ts";
import type { WorkerStatus } from "../../core/pipelines/protocol.ts";

/** A transition being measured: `done` takes the "after" figures. */
export interface TransitionMeasure {
  /** The figures of `kind`, with the worker's status after it (null when it gave none). */
  done(kind: TransitionKind, status: WorkerStatus | null): TransitionFigures;
}

/** Takes the "before" figures of a transition now. */
export function startTransition(meter: Meter | undefined): TransitionMeasure {
  const measure = startMeasure(meter);
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
