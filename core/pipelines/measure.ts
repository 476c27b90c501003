/**
 * Measures one isolated load the way a person would read it: device-used after minus
 * the baseline before (NVML), tracked GPU bytes, process RSS delta, milliseconds. Used
 * by model switching and by test loads.
 * @module
 */
import type { Services } from "../http/context.ts";
import type { ModelReport } from "../types.ts";
import type { SessionDevice } from "../../workers/protocol.ts";

/** What one isolated load cost. */
export interface LoadMeasurement {
  model: string;
  device: SessionDevice;
  /** Where it ended up (the GPU may have sent it to the CPU). */
  placement: ModelReport["placement"];
  /** Device used after − baseline before, when a driver reports used bytes; else tracked bytes. */
  vramBytes: number;
  /** Exact GPU buffer bytes tracked in its worker. */
  trackedBytes: number;
  /**
   * RAM the pipeline's session holds after the load, never negative: the weights for the
   * native engine, the wasm memory size for onnxruntime-web (see ModelReport.ramBytes).
   */
  ramBytes: number;
  /** Process RSS after − before (whole process, every worker: noisy, may be negative). */
  rssDeltaBytes: number;
  /** Process RSS after the load. */
  rssBytes: number;
  /** The engine its session runs on. */
  engine: ModelReport["engine"];
  ms: number;
  /** Where `vramBytes` comes from. */
  vramBasis: "driver" | "tracked";
}

/** Total device-used bytes from a fresh sample, or null when the source does not report them. */
export function deviceUsed(services: Services): number | null {
  const { monitor } = services;
  if (monitor.sourceKind !== "nvml" && monitor.sourceKind !== "cudart") return null;
  return monitor.sample().devices.reduce((sum, d) => sum + d.usedBytes, 0);
}

/** Loads `id` (through the offloader for the GPU) and measures it against the baseline now. */
export async function measureLoad(
  services: Services,
  id: string,
  device: SessionDevice,
): Promise<LoadMeasurement> {
  const { manager, offloader } = services;
  const usedBefore = deviceUsed(services);
  const rssBefore = Deno.memoryUsage().rss;
  const started = performance.now();
  if (device === "gpu") await offloader.ensureOnGpu(id);
  else await manager.load(id, "cpu");
  const ms = performance.now() - started;
  const report = manager.get(id);
  const usedAfter = deviceUsed(services);
  const tracked = report.gpuBytes;
  return {
    model: id,
    device,
    placement: report.placement,
    vramBytes: usedBefore !== null && usedAfter !== null ? usedAfter - usedBefore : tracked,
    trackedBytes: tracked,
    ramBytes: Math.max(0, report.ramBytes),
    rssDeltaBytes: Deno.memoryUsage().rss - rssBefore,
    rssBytes: Deno.memoryUsage().rss,
    engine: report.engine,
    ms,
    vramBasis: usedBefore !== null ? "driver" : "tracked",
  };
}
