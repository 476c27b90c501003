/**
 * `GET /metrics`: Prometheus text (GPU series with dcgm-exporter's label names,
 * per-model series, counters, histograms; see server/metrics/exposition.ts), or JSON for
 * `Accept: application/json` with the devices and `loaded_models` from the live state.
 */
import { z } from "zod";
import type { Handlers, RouteConfig } from "@/server/http/context.ts";
import { renderPrometheus } from "@/server/http/prometheus.ts";
import { buildMetrics } from "@/server/metrics/exposition.ts";
import { type LoadedModel, loadedModels } from "@/server/metrics/loaded_models.ts";
import { deviceSnapshotSchema, memoryProfileSchema } from "@/server/http/schemas.ts";

/** The JSON answer (`Accept: application/json`). */
const metricsJsonSchema = z.object({
  takenAt: z.number(),
  hostname: z.string(),
  devices: z.array(deviceSnapshotSchema),
  loaded_models: z.array(
    z.object({
      id: z.string(),
      device: z.enum(["gpu", "cpu"]),
      state: z.string(),
      vram_bytes: z.number(),
      ram_bytes: z.number(),
      process_growth_bytes: z.number().nullable(),
      last_used_at: z.number().nullable(),
      last_known: z.object({
        gpu: memoryProfileSchema.nullable(),
        cpu: memoryProfileSchema.nullable(),
      }),
    }) satisfies z.ZodType<LoadedModel>,
  ),
});

/** A read; Prometheus text, or JSON on request. */
export const config: RouteConfig = {
  summary: "Prometheus text (JSON with Accept: application/json)",
  auth: "read",
  produces: "prometheus",
  responses: { GET: { 200: metricsJsonSchema } },
};

/** Answers one scrape: the devices and the policy's status from the report feed's current build. */
export const handler: Handlers = {
  GET: (c) => {
    const services = c.var.services;
    const { sample, report } = services.reports.current();
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
      scheduler: report.scheduler ?? services.scheduler.status(),
      counters: services.counters,
      requests: services.scheduler.requests,
      startedAt: services.startedAt,
    });
    // KV faults (a full disk): what the store could not keep or read since start.
    const storage = services.store.health();
    const node = { Hostname: services.hostname };
    families.push(
      {
        name: "headroom_kv_dropped_events_total",
        help: "Events that could not be written to KV (a full disk, a KV fault) and were not kept.",
        type: "counter",
        samples: [{ labels: node, value: storage.droppedEvents }],
      },
      {
        name: "headroom_kv_dropped_writes_total",
        help: "KV writes (events, profiles, chains) that failed and were not kept.",
        type: "counter",
        samples: [{ labels: node, value: storage.droppedWrites }],
      },
      {
        name: "headroom_kv_skipped_values_total",
        help: "Values read from KV that were not what this version writes (a null event), skipped.",
        type: "counter",
        samples: [{ labels: node, value: storage.skippedValues }],
      },
    );
    return c.body(renderPrometheus(families), 200, {
      "content-type": "text/plain; version=0.0.4; charset=utf-8",
    });
  },
};
