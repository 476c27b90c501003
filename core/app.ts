/**
 * Builds the Hono app from the route manifest: shared services on every request,
 * the token on mutating routes, body limits, one error shape, JSON 404s, and 405 for
 * a known path with another method.
 * @module
 */
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { routes } from "../routes/_manifest.ts";
import { requireToken } from "./http/auth.ts";
import type { AppEnv, Services } from "./http/context.ts";
import { errorBody, handleError, handleNotFound, HttpError } from "./http/errors.ts";

/** Body limit of routes that name none. */
const DEFAULT_BODY_LIMIT = 64 * 1024;

/** The app for a set of services. Its `fetch` is what `Deno.serve` (or `deno serve`) runs. */
export function createApp(services: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.use("*", async (c, next) => {
    c.set("services", services);
    await next();
  });
  const token = requireToken(services.config.token);
  for (const [path, handlers, options = {}] of routes) {
    const methods = Object.keys(handlers);
    const limit = options.bodyLimit ?? DEFAULT_BODY_LIMIT;
    const guards = (method: string) => [
      ...(options.mutating && method !== "GET" ? [token] : []),
      bodyLimit({
        maxSize: limit,
        onError: () => {
          throw new HttpError(
            413,
            "too_large",
            `The request body is over this endpoint's ${limit}-byte limit`,
          );
        },
      }),
    ];
    for (const [method, handle] of Object.entries(handlers)) {
      for (const guard of guards(method)) app.on(method, path, guard);
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
