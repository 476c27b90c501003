/**
 * Builds the Hono app from the route manifest: shared services on every request,
 * one error shape, JSON 404s, 405 for a known path with another method.
 * @module
 */
import { Hono } from "hono";
import { routes } from "../routes/_manifest.ts";
import type { AppEnv, Services } from "./http/context.ts";
import { errorBody, handleError, handleNotFound } from "./http/errors.ts";

/** The app for a set of services. Its `fetch` is what `Deno.serve` (or `deno serve`) runs. */
export function createApp(services: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.use("*", async (c, next) => {
    c.set("services", services);
    await next();
  });
  for (const [path, handlers] of routes) {
    const methods = Object.keys(handlers);
    for (const [method, handle] of Object.entries(handlers)) {
      app.on(method, path, (c) => handle(c));
    }
    app.all(path, (c) =>
      c.json(
        errorBody(
          "method_not_allowed",
          `${c.req.method} is not allowed on ${path}; use ${methods.join(" or ")}.`,
        ),
        405,
        { Allow: methods.join(", ") },
      ));
  }
  app.notFound(handleNotFound);
  app.onError(handleError);
  return app;
}
