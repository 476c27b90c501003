/**
 * `POST /api/v1/models/{id}/rehydrate`: CPU → GPU, through the placement policy (it makes
 * room first, or says why it cannot). Mutating: needs the token when one is set.
 */
import type { Handlers } from "../../../../../core/http/context.ts";
import { HttpError } from "../../../../../core/http/errors.ts";

/** Answers the model's ModelReport after the move. */
export const handler: Handlers = {
  POST: async (c) => {
    const { manager, offloader, monitor } = c.var.services;
    const id = c.req.param("id")!;
    manager.get(id);
    if (!offloader.state().available) {
      throw new HttpError(
        409,
        "no_gpu",
        `No GPU is usable (${monitor.reason}): "${id}" stays where it is`,
      );
    }
    await offloader.ensureOnGpu(id);
    return c.json(manager.get(id));
  },
};
