/** `GET /api/v1/health`: is the service up, and what is it measuring with. */
import type { Handlers } from "../../../server/http/context.ts";

/** Answers `{status, uptimeSeconds, source, reason, devices}`; status "degraded" while a GPU is lost. */
export const handler: Handlers = {
  GET: (c) => {
    const { monitor, startedAt } = c.var.services;
    const sample = monitor.current();
    const lost = sample.devices.filter((d) => d.state === "lost").length;
    return c.json({
      status: lost > 0 ? "degraded" : "ok",
      uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
      source: monitor.sourceKind,
      reason: monitor.reason,
      devices: sample.devices.length,
      lostDevices: lost,
    });
  },
};
