/** `GET /api/v1/health`: is the service up, and what is it measuring with. */
import { z } from "zod";
import type { Handlers, RouteConfig } from "@/server/http/context.ts";

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
      }),
    },
  },
};

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
