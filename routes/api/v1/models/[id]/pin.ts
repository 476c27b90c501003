/** `POST /api/v1/models/{id}/pin`: a pinned pipeline is never evicted. Mutating: needs the token when one is set. */
import type { Handlers, RouteConfig } from "@/server/http/context.ts";
import { modelRowSchema } from "@/server/http/schemas.ts";

/** Mutating: needs the token when one is set. */
export const config: RouteConfig = {
  summary: "Never evict this pipeline",
  auth: "mutating",
  responses: { POST: { 200: modelRowSchema } },
};

/** Pins the pipeline; answers its ModelRow. */
export const handler: Handlers<"/api/v1/models/:id/pin"> = {
  POST: (c) => {
    const { scheduler } = c.var.services;
    const id = c.req.param("id");
    scheduler.requireOffered(id, "pin");
    return c.json(scheduler.pin(id, true));
  },
};
