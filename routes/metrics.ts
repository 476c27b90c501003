/**
 * `GET /metrics`: Prometheus text (GPU series with dcgm-exporter's label names,
 * per-model series, counters, histograms; see server/metrics/exposition.ts), or JSON for
 * `Accept: application/json` with the devices and `loaded_models` from the live state.
 */
import type { Handlers } from "../server/http/context.ts";
import { renderPrometheus } from "../server/http/prometheus.ts";
import { buildMetrics } from "../server/metrics/exposition.ts";
import { loadedModels } from "../server/metrics/loaded_models.ts";

/** Answers one scrape. */
export const handler: Handlers = {
  GET: (c) => {
    const services = c.var.services;
    const sample = services.monitor.current();
    const models = services.scheduler.list();
    if ((c.req.header("accept") ?? "").includes("application/json")) {
      return c.json({
        takenAt: sample.takenAt,
        hostname: services.hostname,
        devices: sample.devices,
        loaded_models: loadedModels(models),
      });
    }
    const families = buildMetrics({
      hostname: services.hostname,
      sample,
      models,
      offloader: services.scheduler.status(),
      counters: services.counters,
      startedAt: services.startedAt,
    });
    return c.body(renderPrometheus(families), 200, {
      "content-type": "text/plain; version=0.0.4; charset=utf-8",
    });
  },
};
