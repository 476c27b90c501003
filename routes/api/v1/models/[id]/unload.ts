/**
 * `POST /api/v1/models/{id}/unload`: releases the session and ends the worker. Answers
 * once the driver shows the memory back (`release.confirmed`), or says it did not within
 * the wait. Mutating: needs the token when one is set.
 */
import type { Handlers } from "../../../../../server/http/context.ts";

/** Answers the model's ModelReport after the move, with `release`. */
export const handler: Handlers = {
  POST: async (c) => {
    const { model, release } = await c.var.services.scheduler.unload(c.req.param("id")!);
    return c.json({ ...model, release });
  },
};
