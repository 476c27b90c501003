/**
 * `POST /api/v1/models/{id}/rehydrate`: CPU → GPU, through the scheduler (it makes room
 * first, or says why it cannot). Mutating: needs the token when one is set.
 */
import type { Handlers, RouteConfig } from "@/server/http/context.ts";
import { modelRowSchema } from "@/server/http/schemas.ts";
import { HttpError } from "@/server/http/errors.ts";

/** Mutating: needs the token when one is set. */
export const config: RouteConfig = {
  summary: "CPU → GPU",
  auth: "mutating",
  responses: { POST: { 200: modelRowSchema } },
};

/** Answers the model's ModelReport after the move. */
export const handler: Handlers<"/api/v1/models/:id/rehydrate"> = {
  POST: async (c) => {
    const { scheduler, monitor } = c.var.services;
    const id = c.req.param("id");
    scheduler.require(id);
    if (!scheduler.gpuUsable()) {
      throw new HttpError(
        409,
        "no_gpu",
        `No GPU is usable (${monitor.reason ?? "the device is lost"}): "${id}" stays where it is`,
      );
    }
    scheduler.requireOffered(id, "load-gpu");
    return c.json(await scheduler.rehydrate(id));
  },
};
