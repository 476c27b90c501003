/** `GET /api/v1/hardware/vram`: every device's figures, where they come from, and the pipelines. */
import type { Handlers, RouteConfig } from "@/server/http/context.ts";
import { vramReportSchema } from "@/server/http/schemas.ts";

/** A read; answers the VramReport. */
export const config: RouteConfig = {
  summary:
    "Every device's VRAM figures, the pipelines' placement, the offloader's status, recent events",
  auth: "read",
  responses: { GET: { 200: vramReportSchema } },
};

/**
 * Answers the report feed's current build (rebuilt on a new sample or event, else reused
 * for a moment: at most one driver query per sampling interval).
 */
export const handler: Handlers = {
  GET: (c) =>
    c.body(c.var.services.reports.current().json, 200, { "content-type": "application/json" }),
};
