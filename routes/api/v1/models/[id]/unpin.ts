/** `POST /api/v1/models/{id}/unpin`: the pipeline may be evicted again. Mutating: needs the token when one is set. */
import type { Handlers } from "../../../../../server/http/context.ts";

/** Unpins the pipeline; answers its ModelReport. */
export const handler: Handlers = {
  POST: (c) => c.json(c.var.services.scheduler.pin(c.req.param("id")!, false)),
};
