/**
 * `POST /v2/repository/models/{name}/unload`: Triton's model-repository unload, as
 * `scheduler.unload`: answers once the driver shows the memory back.
 */
import type { Handlers, RouteConfig } from "@/server/http/context.ts";
import {
  repositoryBodySchema,
  repositoryParameters,
} from "@/routes/v2/(_lib)/repository_params.ts";

/** Mutating: needs the token when one is set. */
export const config = {
  summary: "Model repository: unload a model",
  auth: "mutating",
  body: repositoryBodySchema,
  params: { name: "model" }, // 404 before the body is read
  produces: "empty",
} satisfies RouteConfig;

/** Answers 200 with an empty body once unloaded; `unload_dependents` is taken (a model has none). */
export const handler: Handlers<"/v2/repository/models/:name/unload", typeof config> = {
  POST: async (c) => {
    const { scheduler } = c.var.services;
    const name = c.req.param("name");
    repositoryParameters(c.req.valid("json"), ["unload_dependents"]);
    await scheduler.unload(name);
    return c.body(null, 200);
  },
};
