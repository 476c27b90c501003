/**
 * Reading the device and the process for placement: device 0 as the Scheduler reads it
 * ({@link deviceView} over the monitor), the process's meter ({@link processMeter}: RSS,
 * the driver's used bytes, settling after workers end), and the one before/after
 * measurement ({@link startMeasure}) that the host's transitions, switches and test loads
 * all take.
 * @module
 */
import type { VramMonitor } from "../monitor/vram_monitor.ts";
import type { DeviceView, GpuReading, Meter, PipelineHost } from "./types.ts";

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
 * Takes the "before" readings now. Without `meter` RSS reads 0 and the device's used
 * bytes read null; the "after" device reading is skipped when the "before" one was null.
 */
export function startMeasure(
  meter: Pick<Meter, "rssBytes" | "deviceUsedBytes"> | undefined,
): Measurement {
  const started = performance.now();
  const rssBefore = meter?.rssBytes() ?? 0;
  const usedBefore = meter?.deviceUsedBytes() ?? null;
  return {
    finish() {
      const ms = performance.now() - started;
      const usedAfter = usedBefore === null ? null : meter?.deviceUsedBytes() ?? null;
      const rssAfterBytes = meter?.rssBytes() ?? 0;
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

/** The monitor as placement reads it (a narrow view so tests can pass their own). */
export type MonitorView = Pick<
  VramMonitor,
  "sourceKind" | "peek" | "current" | "queries" | "seqOf"
>;

/** True when the monitor's source is a driver (NVML, CUDA) that reports used memory and shows releases. */
function isDriver(monitor: Pick<VramMonitor, "sourceKind">): boolean {
  return monitor.sourceKind === "nvml" || monitor.sourceKind === "cudart";
}

/**
 * The process's meter: its RSS, the device's used bytes from a fresh driver read (null
 * without a driver), and settling: waits until RSS holds still (two readings 50 ms apart
 * within 1 MiB), at most 1 s, because ended workers give their memory back a little after
 * they end.
 */
export function processMeter(monitor: MonitorView): Meter {
  return {
    rssBytes: () => Deno.memoryUsage().rss,
    deviceUsedBytes: () =>
      isDriver(monitor) ? monitor.peek().devices.reduce((sum, d) => sum + d.usedBytes, 0) : null,
    settle: async () => {
      let last = Deno.memoryUsage().rss;
      for (let i = 0; i < 20; i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        const now = Deno.memoryUsage().rss;
        if (Math.abs(now - last) < 2 ** 20) return;
        last = now;
      }
    },
  };
}

/**
 * Device 0 as the Scheduler reads it: the monitor's latest sample, or a fresh driver read
 * (without touching the history) when a decision needs one. `trackedBytes` is what our
 * pipelines held when the figures were read, so the Scheduler can correct an older sample.
 */
export function deviceView(
  monitor: MonitorView,
  host: Pick<PipelineHost, "trackedBytes">,
): DeviceView {
  const confirmsReleases = isDriver(monitor);
  return {
    read: (when): GpuReading => {
      const none = {
        state: "none" as const,
        freeBytes: 0,
        totalBytes: 0,
        trackedBytes: host.trackedBytes(),
        confirmsReleases: false,
        seq: monitor.queries,
      };
      if (monitor.sourceKind === "none") return none;
      const sample = when === "fresh" ? monitor.peek() : monitor.current();
      const device = sample.devices[0];
      if (!device) return none;
      return {
        state: device.state,
        freeBytes: device.freeBytes,
        totalBytes: device.totalBytes,
        trackedBytes: device.activeBytes,
        confirmsReleases,
        seq: monitor.seqOf(sample),
        error: device.error,
      };
    },
  };
}
