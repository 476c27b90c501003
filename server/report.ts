/**
 * Builds the body of `GET /api/v1/hardware/vram` (also each SSE snapshot event and the
 * dashboard's first render) from the monitor's latest sample and the pipelines' state,
 * with every model's row (the same rows `GET /api/v1/models` answers).
 * @module
 */
import type { Services } from "./http/context.ts";
import type { ModelRow, VramReport, VramSample } from "../core/types.ts";

/** The report for a sample (the monitor's current one by default). */
export function buildVramReport(services: Services, sample?: VramSample): VramReport {
  const { monitor } = services;
  const current = sample ?? monitor.current();
  const models = listModels(services);
  return {
    source: monitor.sourceKind,
    reason: monitor.reason,
    driverVersion: monitor.source.driverVersion,
    devices: current.devices,
    pipelines: services.scheduler.placements(),
    offloader: services.scheduler.status(),
    events: services.events.recent(20),
    ...(services.cpuEngine ? { cpuEngine: services.cpuEngine } : {}),
    ...(models ? { models } : {}),
    takenAt: current.takenAt,
  };
}

/** The last listing error logged (each report would repeat it, four a second). */
let lastListError = "";

/**
 * Every model's row, or null when they cannot be listed now: the device figures still
 * go out (the page then fetches `GET /api/v1/models`, which answers the error).
 */
function listModels(services: Services): ModelRow[] | null {
  try {
    const models = services.scheduler.list();
    lastListError = "";
    return models;
  } catch (error) {
    const message = String(error);
    if (message !== lastListError) {
      console.error("VRAM report: cannot list the models (sent without them):", error);
    }
    lastListError = message;
    return null;
  }
}
