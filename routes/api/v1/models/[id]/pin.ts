/** `POST /api/v1/models/{id}/pin`: a pinned pipeline is never evicted. Mutating: needs the token when one is set. */
import type { Handlers } from "../../../../../server/http/context.ts";

/** Pins the pipeline; answers its ModelReport. */
export const handler: Handlers = {
  POST: (c) => c.json(c.var.services.scheduler.pin(c.req.param("id")!, true)),
};
