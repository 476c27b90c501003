/**
 * Builds the body of `GET /api/v1/hardware/vram` (also each SSE snapshot event) from
 * the monitor's latest sample and the pipelines' state.
 * @module
 */
import type { Services } from "./http/context.ts";
import type { VramReport, VramSample } from "../core/types.ts";

/** The report for a sample (the monitor's current one by default). */
export function buildVramReport(services: Services, sample?: VramSample): VramReport {
  const { monitor } = services;
  const current = sample ?? monitor.current();
  return {
    source: monitor.sourceKind,
    reason: monitor.reason,
    driverVersion: monitor.source.driverVersion,
    devices: current.devices,
    pipelines: services.scheduler.placements(),
    offloader: services.scheduler.status(),
    events: services.events.recent(20),
    ...(services.cpuEngine ? { cpuEngine: services.cpuEngine } : {}),
    takenAt: current.takenAt,
  };
}
