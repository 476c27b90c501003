/**
 * `POST /api/v1/models/{id}/load`: body `{device?: "gpu" | "cpu"}`. A GPU load that ends
 * elsewhere answers 409 `no_gpu` saying why and where the model is (./_gpu_rule.ts), the
 * same whichever the reason. Mutating: needs the token when one is set.
 */
import { z } from "zod";
import type { Handlers, RouteConfig } from "@/server/http/context.ts";
import { modelRowSchema } from "@/server/http/schemas.ts";
import { noGpuUsable, requireOnGpu } from "@/routes/api/v1/models/(_lib)/gpu_rule.ts";

/** The request body. */
export const bodySchema = z.object({
  device: z.enum(["gpu", "cpu"], { error: 'must be "gpu" or "cpu"' }).optional(),
}).strict();

/** Mutating: needs the token when one is set. */
export const config = {
  summary: "Load a model on the GPU (making room first) or the CPU",
  auth: "mutating",
  params: { id: "model" }, // 404 before the body is read
  body: bodySchema,
  responses: { POST: { 200: modelRowSchema } },
} satisfies RouteConfig;

/** Loads the model through the scheduler (the GPU: making room first) and answers its ModelRow. */
export const handler: Handlers<"/api/v1/models/:id/load", typeof config> = {
  POST: async (c) => {
    const { scheduler, monitor } = c.var.services;
    const id = c.req.param("id");
    const device = c.req.valid("json").device ?? scheduler.defaultDevice;
    if (device === "gpu" && !scheduler.gpuUsable()) {
      throw noGpuUsable(id, monitor.reason ?? "the device is lost");
    }
    scheduler.requireOffered(id, device === "gpu" ? "load-gpu" : "load-cpu");
    const row = await scheduler.load(id, device);
    return c.json(device === "gpu" ? requireOnGpu(row) : row);
  },
};
