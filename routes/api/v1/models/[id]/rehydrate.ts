/** `POST /api/v1/models/{id}/rehydrate`: CPU → GPU: re-creates the GPU session. Mutating: needs the token when one is set. */
import type { Handlers } from "../../../../../core/http/context.ts";

/** Answers the model's ModelReport after the move. */
export const handler: Handlers = {
  POST: async (c) => c.json(await c.var.services.manager.rehydrate(c.req.param("id")!)),
};
