/**
 * Cross-site protection. A web page the user visits can send "simple" requests to
 * Headroom on loopback (a form post, `fetch` with `mode: "no-cors"` and a text/plain
 * body) that CORS never stops, and a DNS-rebinding page can even read the answers. So:
 * - {@link hostGuard}: while bound to loopback, a `Host` that is not a loopback name (or
 *   listed in HEADROOM_ALLOWED_HOSTS) is refused: a rebound name never reaches a route.
 * - {@link originGuard}: a request that can change something (any method but GET/HEAD,
 *   and WebSocket upgrades) from another origin than the service's own or one listed in
 *   HEADROOM_CORS_ORIGINS is refused.
 * - {@link contentTypeGuard}: a body must come with one of the route's documented types;
 *   `text/plain`, forms and missing types are refused (415).
 * Each answers JSON that names the header and the setting that would allow it.
 * @module
 */
import type { MiddlewareHandler } from "hono";
import { isLoopback } from "../config.ts";
import { HttpError } from "./errors.ts";

/** True for a name only this machine resolves to itself: localhost, *.localhost, 127/8, ::1. */
export function isLoopbackName(hostname: string): boolean {
  const name = hostname.toLowerCase().replace(/\.$/, "");
  return isLoopback(name) || name.endsWith(".localhost");
}

/** The host name of a `Host` header value or URL host (port and IPv6 brackets kept apart). */
function hostnameOf(host: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(host);
  if (bracketed) return `[${bracketed[1].toLowerCase()}]`;
  return host.replace(/:\d+$/, "").toLowerCase();
}

/**
 * Refuses (403 `forbidden_host`) a request whose `Host` is not a loopback name or one of
 * `allowedHosts`, when the service is bound to a loopback address; a no-op otherwise
 * (beyond loopback the API token guards mutations).
 */
export function hostGuard(bindHost: string, allowedHosts: readonly string[]): MiddlewareHandler {
  const allowed = new Set(allowedHosts.map((h) => h.toLowerCase()));
  const active = isLoopback(bindHost);
  return async (c, next) => {
    if (active) {
      const host = c.req.header("host") ?? new URL(c.req.url).host;
      const name = hostnameOf(host);
      if (!isLoopbackName(name) && !allowed.has(name)) {
        throw new HttpError(
          403,
          "forbidden_host",
          `Host "${host}" is not this service's: it listens on loopback and answers only ` +
            `loopback names (localhost, 127.0.0.1, [::1]); list other names in ` +
            `HEADROOM_ALLOWED_HOSTS (--allowed-hosts)`,
        );
      }
    }
    await next();
  };
}

/** Methods that never change anything (and that browsers send cross-site without asking). */
const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * Refuses (403 `forbidden_origin`) a mutating request or WebSocket upgrade whose `Origin`
 * is neither the service's own origin nor one of `allowedOrigins`. A request without
 * `Origin` (curl, scripts, the OpenAI client) is not a browser's cross-site request and passes.
 */
export function originGuard(allowedOrigins: readonly string[]): MiddlewareHandler {
  const allowed = new Set(allowedOrigins);
  return async (c, next) => {
    const upgrade = (c.req.header("upgrade") ?? "").toLowerCase() === "websocket";
    const origin = c.req.header("origin");
    if ((upgrade || !SAFE_METHODS.has(c.req.method)) && origin !== undefined) {
      const own = ownOrigin(c.req.url, c.req.header("host"));
      if (origin !== own && !allowed.has(origin)) {
        throw new HttpError(
          403,
          "forbidden_origin",
          `Origin "${origin}" may not call ${c.req.method} ${c.req.path}: only pages served ` +
            `by Headroom itself (${own}) may, or origins listed in HEADROOM_CORS_ORIGINS ` +
            `(--cors-origins)`,
        );
      }
    }
    await next();
  };
}

/** The origin a browser shows for pages of this service, as the request reached it. */
function ownOrigin(url: string, host: string | undefined): string {
  const parsed = new URL(url);
  return `${parsed.protocol}//${host ?? parsed.host}`;
}

/** The media types a body may have on JSON routes. */
export const JSON_TYPES: readonly string[] = ["application/json"];
/** The media types a body may have on image routes. */
export const IMAGE_TYPES: readonly string[] = ["image/png", "image/jpeg", "multipart/form-data"];

/**
 * Refuses (415 `unsupported_media_type`) a request with a body whose `Content-Type` is
 * not one of `types`, or that has a body and no type. A request with no body passes.
 */
export function contentTypeGuard(types: readonly string[]): MiddlewareHandler {
  return async (c, next) => {
    const header = c.req.header("content-type");
    const type = (header ?? "").split(";")[0].trim().toLowerCase();
    const length = c.req.header("content-length");
    const hasBody = header !== undefined ||
      (length !== undefined && length !== "0") ||
      c.req.header("transfer-encoding") !== undefined;
    if (hasBody && !types.includes(type)) {
      throw new HttpError(
        415,
        "unsupported_media_type",
        `Content-Type "${header ?? "(none)"}" is not accepted on ${c.req.method} ${c.req.path}: ` +
          `send ${listTypes(types)}`,
      );
    }
    await next();
  };
}

/** "a", "a or b", "a, b, or c". */
function listTypes(types: readonly string[]): string {
  if (types.length <= 2) return types.join(" or ");
  return `${types.slice(0, -1).join(", ")}, or ${types.at(-1)}`;
}
