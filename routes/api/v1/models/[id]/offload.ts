/** `POST /api/v1/models/{id}/offload`: GPU → CPU: frees its GPU buffers; it keeps serving on the CPU. Mutating: needs the token when one is set. */
import type { Handlers } from "../../../../../core/http/context.ts";

/** Answers the model's ModelReport after the move. */
export const handler: Handlers = {
  POST: async (c) => c.json(await c.var.services.manager.offload(c.req.param("id")!)),
};
