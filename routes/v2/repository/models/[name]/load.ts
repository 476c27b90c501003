/**
 * `POST /v2/repository/models/{name}/load`: Triton's model-repository load, as
 * `scheduler.load`: the model asks for the default device (the GPU where one is usable)
 * and the placement policy decides, making room first, like any request.
 */
import type { Handlers, RouteConfig } from "@/server/http/context.ts";
import {
  repositoryBodySchema,
  repositoryParameters,
} from "@/routes/v2/(_lib)/repository_params.ts";

/** Mutating: needs the token when one is set. */
export const config = {
  summary: "Model repository: load a model (the GPU through the placement policy)",
  auth: "mutating",
  body: repositoryBodySchema,
  params: { name: "model" }, // 404 before the body is read
  produces: "empty",
} satisfies RouteConfig;

/** Answers 200 with an empty body once the model is loaded, as Triton does. */
export const handler: Handlers<"/v2/repository/models/:name/load", typeof config> = {
  POST: async (c) => {
    const { scheduler } = c.var.services;
    const name = c.req.param("name");
    repositoryParameters(c.req.valid("json"), []);
    await scheduler.load(name);
    return c.body(null, 200);
  },
};
