/**
 * `POST /api/v1/models/{id}/offload`: GPU → CPU: frees its GPU buffers; it keeps serving
 * on the CPU. Answers once the driver shows the memory back (`release.confirmed`), or
 * says it did not within the wait. Mutating: needs the token when one is set.
 */
import type { Handlers, RouteConfig } from "@/server/http/context.ts";
import { releasedModelSchema } from "@/server/http/schemas.ts";

/** Mutating: needs the token when one is set. */
export const config: RouteConfig = {
  summary: "GPU → CPU: free its GPU memory; it keeps serving on the CPU",
  auth: "mutating",
  responses: { POST: { 200: releasedModelSchema } },
};

/** Answers the model's ModelRow after the move, with `release`. */
export const handler: Handlers<"/api/v1/models/:id/offload"> = {
  POST: async (c) => {
    const { scheduler } = c.var.services;
    const id = c.req.param("id");
    scheduler.requireOffered(id, "offload");
    const { model, release } = await scheduler.offload(id);
    return c.json({ ...model, release });
  },
};
