/** `GET /api/v1/models/{id}`: one model's state. */
import type { Handlers, RouteConfig } from "@/server/http/context.ts";
import { modelRowSchema } from "@/server/http/schemas.ts";

/** A read; answers one ModelRow. */
export const config: RouteConfig = {
  summary: "One model's state and figures",
  auth: "read",
  responses: { GET: { 200: modelRowSchema } },
};

/** Answers the ModelRow, or 404 naming the known ids. */
export const handler: Handlers<"/api/v1/models/:id"> = {
  GET: (c) => c.json(c.var.services.scheduler.model(c.req.param("id"))),
};
