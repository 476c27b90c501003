/**
 * The host's release check: after a move off the GPU, the worker must track no GPU
 * bytes; any left are flagged as a leak on the pipeline (shown in its report and sent as
 * a `leak` event). Whether the driver shows the memory back is the scheduler's check
 * (core/placement/releases.ts), which polls the device.
 * @module
 */
import type { EventLog } from "../../core/events.ts";
import type { Pipeline } from "./pipeline.ts";

/** Flags `pipeline` with a leak when `remainingTracked` bytes outlived `kind`; clears it otherwise. */
export function checkTrackedRelease(
  pipeline: Pipeline,
  kind: string,
  remainingTracked: number,
  events: EventLog,
): void {
  const id = pipeline.model.id;
  if (remainingTracked > 0) {
    pipeline.leak = `${remainingTracked} GPU bytes still tracked after ${kind}`;
    events.emit({ kind: "leak", pipeline: id, message: `${id}: ${pipeline.leak}` });
    return;
  }
  pipeline.leak = null;
}
