/**
 * Builds the Hono app from a route registry (the composition root passes
 * routes/_manifest.ts in; this module imports no route): cross-site protection (Host,
 * Origin, content types), shared services on every request, the token where the access
 * rules ask for it, CORS only for listed origins, body limits, the validation each
 * route's `config` declares, one error shape, JSON 404s, and 405 for a known path with
 * another method.
 * @module
 */
import { Hono, type MiddlewareHandler } from "hono";
import { cors } from "hono/cors";
import { needsToken, requireToken } from "./http/auth.ts";
import type { AppEnv, Method, RouteEntry, Services } from "./http/context.ts";
import { errorResponse, errorShapeOf, handleError, handleNotFound } from "./http/http_error.ts";
import { contentTypeGuard, crossSiteGuard, IMAGE_TYPES, JSON_TYPES } from "./http/origin_guard.ts";
import { requestValidator } from "./http/validate.ts";
import { storageNotice } from "./http/storage_notice.ts";
import { streamingBodyLimit } from "./http/body_limit.ts";
import { HEADER_LENGTH_HEADER, INFER_BODY_TYPES } from "./oip/infer.ts";

/** Methods answered with 405 on a known path that does not handle them. */
const ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/** Body limit of routes that name none. */
const DEFAULT_BODY_LIMIT = 64 * 1024;

/**
 * The app serving `routes` (routes/_manifest.ts in the service) with a set of services.
 * Its `fetch` is what `Deno.serve` (or `deno serve`) runs.
 */
export function createApp(services: Services, routes: readonly RouteEntry[]): Hono<AppEnv> {
  const { config } = services;
  const app = new Hono<AppEnv>();
  // Cross-site protection first: a rebound Host or a foreign page's request never reaches a route.
  app.use("*", crossSiteGuard(config.host, config.allowedHosts, config.corsOrigins));
  app.use("*", storageNotice(services.store)); // a full disk is said on every answer
  if (config.corsOrigins.length > 0) {
    const allowListed = cors({
      origin: config.corsOrigins,
      allowHeaders: ["Authorization", "Content-Type", HEADER_LENGTH_HEADER],
      exposeHeaders: [HEADER_LENGTH_HEADER], // binary tensor data's JSON length, on /v2 answers
    });
    app.use("/api/*", allowListed);
    app.use("/v1/*", allowListed); // browser OpenAI clients on a listed origin
    app.use("/v2/*", allowListed); // browser Open Inference Protocol clients
  }
  // The protocol's YAML names server metadata `/v2/`: send it to `/v2` (a bare redirect:
  // Hono's trimTrailingSlash kept the 404's JSON content type on an empty 301).
  app.get(
    "/v2/",
    (c) =>
      new Response(null, { status: 301, headers: { Location: new URL("/v2", c.req.url).href } }),
  );
  const token = requireToken(config.token);
  const withServices: MiddlewareHandler<AppEnv> = async (c, next) => {
    c.set("services", services);
    c.set("routes", routes);
    await next();
  };
  for (const [path, handlers, options] of routes) {
    const methods = Object.keys(handlers) as Method[];
    const limit = options.bodyLimit ?? DEFAULT_BODY_LIMIT;
    const limitBody = streamingBodyLimit(limit);
    const typed = contentTypeGuard(
      options.image ? IMAGE_TYPES : options.binary ? INFER_BODY_TYPES : JSON_TYPES,
    );
    // Triton's and KServe's clients send v2 bodies without a Content-Type. That is safe to
    // take: a browser's cross-site request always carries Origin, which the guard above refuses.
    const contentType: MiddlewareHandler<AppEnv> = errorShapeOf(path) === "oip"
      ? (c, next) => (c.req.header("content-type") === undefined ? next() : typed(c, next))
      : typed;
    for (const method of methods) {
      const handle = handlers[method]!;
      // Only what a request needs: the token where the rules ask for it, a body limit
      // where there can be a body (GET /api/v1/hardware/vram is every poller's hot path),
      // then what the route's config validates (the handler reads `c.req.valid(…)`).
      const validate = requestValidator(method, options, services);
      const guards: MiddlewareHandler<AppEnv>[] = [
        ...(needsToken(method, options.auth, config) ? [token] : []),
        ...(method === "GET" ? [] : [contentType, limitBody]),
        ...(validate ? [validate] : []),
      ];
      if (guards.length === 0) {
        // One handler and no middleware: Hono's fastest path, for the pollers' routes.
        app.on(method, path, (c) => {
          c.set("services", services);
          c.set("routes", routes);
          return handle(c);
        });
        continue;
      }
      for (const guard of [withServices, ...guards]) app.on(method, path, guard);
      app.on(method, path, (c) => handle(c));
    }
    const others = ALL_METHODS.filter((m) => !(methods as string[]).includes(m));
    app.on(others, path, (c) =>
      errorResponse(
        c,
        405,
        "method_not_allowed",
        `${c.req.method} is not allowed on ${path}; use ${methods.join(" or ")}.`,
        null,
        { Allow: methods.join(", ") },
      ));
  }
  app.notFound(handleNotFound);
  app.onError(handleError);
  return app;
}
