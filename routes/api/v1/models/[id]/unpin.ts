/** `POST /api/v1/models/{id}/unpin`: the pipeline may be evicted again. Mutating: needs the token when one is set. */
import type { Handlers, RouteConfig } from "@/server/http/context.ts";
import { modelRowSchema } from "@/server/http/schemas.ts";

/** Mutating: needs the token when one is set. */
export const config: RouteConfig = {
  summary: "Let this pipeline be evicted again",
  auth: "mutating",
  responses: { POST: { 200: modelRowSchema } },
};

/** Unpins the pipeline; answers its ModelRow. */
export const handler: Handlers<"/api/v1/models/:id/unpin"> = {
  POST: (c) => {
    const { scheduler } = c.var.services;
    const id = c.req.param("id");
    scheduler.requireOffered(id, "unpin");
    return c.json(scheduler.pin(id, false));
  },
};
