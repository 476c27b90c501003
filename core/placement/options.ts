/**
 * How a Scheduler is set up: what it drives (the host), what it reads (the device, the
 * meter, the clock) and the policy's settings. Apart from the scheduler so its parts read
 * the settings without importing it.
 * @module
 */
import type { EventLog } from "../events.ts";
import type { Clock } from "../clock.ts";
import type { ModelFootprint } from "./budget.ts";
import type { PipelineHost } from "./host.ts";
import type { DeviceView, Meter } from "./device.ts";
import type { KeepAlive } from "./keep_alive.ts";

/** How the scheduler is set up. */
export interface SchedulerOptions {
  host: PipelineHost;
  device: DeviceView;
  events: EventLog;
  /** Headroom's allowance in bytes for a device total (a fixed budget, a share, or the total). */
  budgetFor: (totalBytes: number) => number;
  /** Free VRAM to keep, exactly as configured. */
  headroomBytes: number;
  /** What a model's file weighs and what was measured of it. */
  footprint: (id: string) => ModelFootprint;
  onInsufficientVram: "cpu" | "reject";
  mode?: "shared" | "exclusive";
  /** Most requests waiting or running on one pipeline; past it 429 with Retry-After. */
  queueLimit?: number;
  /** A request past this answers 504, and a worker stuck past it is replaced. */
  requestTimeoutMs?: number;
  /** How long a release may take to show before it is flagged as a leak (default 2 s). */
  releaseWaitMs?: number;
  /** How often a release is checked against the driver (default 20 ms). */
  releasePollMs?: number;
  keepAlive?: (id: string) => KeepAlive;
  meter?: Meter;
  clock?: Clock;
}
