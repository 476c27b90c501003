/**
 * `POST /v2/repository/models/{name}/unload`: Triton's model-repository unload, as
 * `scheduler.unload`: answers once the driver shows the memory back.
 */
import type { Handlers, RouteConfig } from "../../../../../server/http/context.ts";
import { repositoryBodySchema, repositoryParameters } from "../_params.ts";

/** Mutating: needs the token when one is set. */
export const config: RouteConfig = {
  summary: "Model repository: unload a model",
  auth: "mutating",
  body: repositoryBodySchema,
  produces: "empty",
};

/** Answers 200 with an empty body once unloaded; `unload_dependents` is taken (a model has none). */
export const handler: Handlers = {
  POST: async (c) => {
    const { scheduler } = c.var.services;
    const name = c.req.param("name")!;
    scheduler.model(name); // 404 first
    await repositoryParameters(c, ["unload_dependents"]);
    await scheduler.unload(name);
    return c.body(null, 200);
  },
};
