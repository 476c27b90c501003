/** `GET /api/v1/models/{id}`: one model's state. */
import type { Handlers } from "../../../../server/http/context.ts";

/** Answers the ModelReport, or 404 naming the known ids. */
export const handler: Handlers = {
  GET: (c) => c.json(c.var.services.scheduler.model(c.req.param("id")!)),
};
