/**
 * Builds the Hono app from a route registry (the composition root passes
 * routes/_manifest.ts in; this module imports no route): cross-site protection (Host,
 * Origin, content types), shared services on every request, the token where the access
 * rules ask for it, CORS only for listed origins, body limits, the validation each
 * route's `config` declares, one error shape, JSON 404s, and 405 for a known path with
 * another method.
 * @module
 */
import { type Context, Hono, type MiddlewareHandler } from "hono";
import { cors } from "hono/cors";
import { needsToken, tokenCheck } from "./http/auth.ts";
import type { AppEnv, Method, RouteEntry, Services } from "./http/context.ts";
import {
  errorResponse,
  errorShapeOf,
  handleError,
  handleNotFound,
  type HttpError,
} from "./http/http_error.ts";
import { contentTypeCheck, crossSiteCheck, IMAGE_TYPES, JSON_TYPES } from "./http/origin_guard.ts";
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
 *
 * Each route and method gets one handler that runs its checks in order (cross-site, the
 * token where the rules ask for it, content type, body limit, what its config validates)
 * and then the route: plain calls, not a chain of middleware, so a request's path is one
 * function a reader follows and Hono takes its one-handler fast path. The 404, the 405s
 * and the `/v2/` redirect pass the same cross-site check; every answer, errors included,
 * carries the storage notice.
 */
export function createApp(services: Services, routes: readonly RouteEntry[]): Hono<AppEnv> {
  const { config } = services;
  const app = new Hono<AppEnv>();
  const crossSite = crossSiteCheck(config.host, config.allowedHosts, config.corsOrigins);
  const notice = storageNotice(services.store); // a full disk is said on every answer
  /** `answer` behind the cross-site check, its errors in the path's shape, with the notice. */
  const guarded =
    (answer: (c: Context<AppEnv>) => Response | Promise<Response>) =>
    async (c: Context<AppEnv>): Promise<Response> => {
      try {
        crossSite(c.req.raw, c.req.path);
        return notice(await answer(c));
      } catch (error) {
        if (!(error instanceof Error)) throw error;
        return notice(handleError(error, c));
      }
    };
  if (config.corsOrigins.length > 0) {
    const allowListed = cors({
      origin: config.corsOrigins,
      allowHeaders: ["Authorization", "Content-Type", HEADER_LENGTH_HEADER],
      exposeHeaders: [HEADER_LENGTH_HEADER], // binary tensor data's JSON length, on /v2 answers
    });
    // A preflight is answered here: it passes the cross-site check (a rebound Host) first.
    const corsStep: MiddlewareHandler<AppEnv> = async (c, next) => {
      crossSite(c.req.raw, c.req.path);
      const preflight = await allowListed(c, next);
      if (preflight) return notice(preflight);
    };
    app.use("/api/*", corsStep);
    app.use("/v1/*", corsStep); // browser OpenAI clients on a listed origin
    app.use("/v2/*", corsStep); // browser Open Inference Protocol clients
  }
  // The protocol's YAML names server metadata `/v2/`: send it to `/v2` (a bare redirect:
  // Hono's trimTrailingSlash kept the 404's JSON content type on an empty 301).
  app.get(
    "/v2/",
    guarded((c) =>
      new Response(null, { status: 301, headers: { Location: new URL("/v2", c.req.url).href } })
    ),
  );
  const token = config.token === null ? null : tokenCheck(config.token);
  for (const [path, handlers, options] of routes) {
    const methods = Object.keys(handlers) as Method[];
    const limit = options.bodyLimit ?? DEFAULT_BODY_LIMIT;
    const limitBody = streamingBodyLimit(limit);
    const typed = contentTypeCheck(
      options.image ? IMAGE_TYPES : options.binary ? INFER_BODY_TYPES : JSON_TYPES,
    );
    // Triton's and KServe's clients send v2 bodies without a Content-Type. That is safe to
    // take: a browser's cross-site request always carries Origin, which the check refuses.
    const untypedTaken = errorShapeOf(path) === "oip";
    for (const method of methods) {
      const handle = handlers[method]!;
      // Only what a request needs: the token where the rules ask for it, the content type
      // and body limit where there can be a body (GET /api/v1/hardware/vram is every
      // poller's hot path), then what the route's config validates (the handler reads
      // `c.req.valid(…)`).
      const tokenNeeded = token !== null && needsToken(method, options.auth, config);
      const hasBody = method !== "GET";
      const validate = requestValidator(method, options, services);
      app.on(
        method,
        path,
        guarded(async (c) => {
          c.set("services", services);
          c.set("routes", routes);
          if (tokenNeeded) token(c);
          let bodyRefusal: (() => HttpError | null) | null = null;
          if (hasBody) {
            if (!untypedTaken || c.req.raw.headers.has("content-type")) {
              typed(c.req.raw, c.req.path);
            }
            bodyRefusal = limitBody(c);
          }
          try {
            if (validate) await validate(c);
            return await handle(c);
          } catch (error) {
            // A read that failed past the body limit is the 413, whatever the reader threw.
            throw bodyRefusal?.() ?? error;
          }
        }),
      );
    }
    const others = ALL_METHODS.filter((m) => !(methods as string[]).includes(m));
    app.on(
      others,
      path,
      guarded((c) =>
        errorResponse(
          c,
          405,
          "method_not_allowed",
          `${c.req.method} is not allowed on ${path}; use ${methods.join(" or ")}.`,
          null,
          { Allow: methods.join(", ") },
        )
      ),
    );
  }
  app.notFound(guarded(handleNotFound));
  app.onError((error, c) => notice(handleError(error, c)));
  return app;
}
