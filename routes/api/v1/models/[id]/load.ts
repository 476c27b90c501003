/**
 * `POST /api/v1/models/{id}/load`: body `{device?: "gpu" | "cpu"}`. A GPU load that ends
 * elsewhere answers 409 `no_gpu` saying why and where the model is (./_gpu_rule.ts), the
 * same whichever the reason. Mutating: needs the token when one is set.
 */
import { z } from "zod";
import type { Handlers, RouteConfig } from "../../../../../server/http/context.ts";
import { modelRowSchema } from "../../../../../server/http/schemas.ts";
import { parseJsonBody } from "../../../../../server/http/validate.ts";
import { noGpuUsable, requireOnGpu } from "./_gpu_rule.ts";

/** The request body. */
export const bodySchema = z.object({
  device: z.enum(["gpu", "cpu"], { error: 'must be "gpu" or "cpu"' }).optional(),
}).strict();

/** Mutating: needs the token when one is set. */
export const config: RouteConfig = {
  summary: "Load a model on the GPU (making room first) or the CPU",
  auth: "mutating",
  body: bodySchema,
  responses: { POST: { 200: modelRowSchema } },
};

/** Loads the model through the scheduler (the GPU: making room first) and answers its ModelReport. */
export const handler: Handlers = {
  POST: async (c) => {
    const { scheduler, monitor } = c.var.services;
    const id = c.req.param("id")!;
    scheduler.model(id); // 404 first
    const body = await parseJsonBody(c, bodySchema);
    const device = body.device ?? scheduler.defaultDevice;
    if (device === "gpu" && !scheduler.gpuUsable()) {
      throw noGpuUsable(id, monitor.reason ?? "the device is lost");
    }
    const row = await scheduler.load(id, device);
    return c.json(device === "gpu" ? requireOnGpu(row) : row);
  },
};
