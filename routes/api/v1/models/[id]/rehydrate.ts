/**
 * `POST /api/v1/models/{id}/rehydrate`: CPU → GPU, through the scheduler (it makes room
 * first, or says why it cannot); a move that ends elsewhere answers 409 `no_gpu` as a GPU
 * load does (./_gpu_rule.ts). Mutating: needs the token when one is set.
 */
import type { Handlers, RouteConfig } from "@/server/http/context.ts";
import { modelRowSchema } from "@/server/http/schemas.ts";
import { noGpuUsable, requireOnGpu } from "@/routes/api/v1/models/(_lib)/gpu_rule.ts";

/** Mutating: needs the token when one is set. */
export const config: RouteConfig = {
  summary: "CPU → GPU",
  auth: "mutating",
  responses: { POST: { 200: modelRowSchema } },
};

/** Answers the model's ModelRow after the move. */
export const handler: Handlers<"/api/v1/models/:id/rehydrate"> = {
  POST: async (c) => {
    const { scheduler, monitor } = c.var.services;
    const id = c.req.param("id");
    scheduler.require(id);
    if (!scheduler.gpuUsable()) throw noGpuUsable(id, monitor.reason ?? "the device is lost");
    scheduler.requireOffered(id, "load-gpu");
    return c.json(requireOnGpu(await scheduler.rehydrate(id)));
  },
};
