/** `GET /api/v1/health`: is the service up, and what is it measuring with. */
import { z } from "zod";
import type { Handlers, RouteConfig } from "@/server/http/context.ts";
import { storageHealthSchema } from "@/server/http/schemas.ts";

/** A read; answers whether the service is up and what it measures with. */
export const config: RouteConfig = {
  summary: "Is the service up, and what does it measure with",
  auth: "read",
  responses: {
    GET: {
      200: z.object({
        status: z.enum(["ok", "degraded"]),
        uptimeSeconds: z.number(),
        source: z.enum(["nvml", "cudart", "webgpu", "none"]),
        reason: z.string().nullable(),
        devices: z.number(),
        lostDevices: z.number(),
        storage: storageHealthSchema,
      }),
    },
  },
};

/**
 * Answers `{status, uptimeSeconds, source, reason, devices, lostDevices, storage}`; status
 * "degraded" while a GPU is lost or the last KV write failed (a full disk: events not kept).
 */
export const handler: Handlers = {
  GET: (c) => {
    const { monitor, startedAt, store } = c.var.services;
    const sample = monitor.current();
    const lost = sample.devices.filter((d) => d.state === "lost").length;
    const storage = store.health();
    return c.json({
      status: lost > 0 || storage.state === "degraded" ? "degraded" : "ok",
      uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
      source: monitor.sourceKind,
      reason: monitor.reason,
      devices: sample.devices.length,
      lostDevices: lost,
      storage,
    });
  },
};
