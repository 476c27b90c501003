/**
 * Cross-site protection. A web page the user visits can send "simple" requests to
 * Headroom on loopback (a form post, `fetch` with `mode: "no-cors"` and a text/plain
 * body) that CORS never stops, and a DNS-rebinding page can even read the answers. So
 * {@link crossSiteCheck} refuses:
 * - while bound to loopback, a `Host` that is not loopback by the one rule in
 *   core/loopback.ts (or listed in HEADROOM_ALLOWED_HOSTS): a rebound name
 *   (`127.0.0.1.evil.example` too) never reaches a route;
 * - a request that can change something (any method but GET/HEAD, and WebSocket
 *   upgrades) from another origin than the service's own or one listed in
 *   HEADROOM_CORS_ORIGINS.
 * And {@link contentTypeCheck}: a body must come with one of the route's documented types;
 * `text/plain`, forms and missing types are refused (415).
 * Each is a plain check that throws the answer (JSON naming the header and the setting that
 * would allow it): server/app.ts runs the checks of a route one after the other in its
 * handler, not as a chain of middleware.
 * @module
 */
import { isLoopback, parseLoopbackHost, parseLoopbackOrigin } from "../../core/loopback.ts";
import { HttpError } from "./http_error.ts";

/** The host name of a `Host` header value or URL host (port and IPv6 brackets kept apart). */
function hostnameOf(host: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(host);
  if (bracketed) return `[${bracketed[1].toLowerCase()}]`;
  return host.replace(/:\d+$/, "").toLowerCase();
}

/**
 * Refuses (403 `forbidden_host`) a request whose `Host` is not loopback by the one rule
 * (core/loopback.ts: `localhost`, 127.0.0.0/8, `[::1]`, optional port) or one of
 * `allowedHosts`, when the service is bound to a loopback address; a no-op otherwise
 * (beyond loopback the API token guards mutations).
 */
function hostCheck(bindHost: string, allowedHosts: readonly string[]): (request: Request) => void {
  const allowed = new Set(allowedHosts.map((h) => h.toLowerCase()));
  if (!isLoopback(bindHost)) return () => {};
  const seen = new Set<string>(); // Host values already accepted: the hot path is one lookup
  return (request) => {
    const host = request.headers.get("host") ?? new URL(request.url).host;
    if (seen.has(host)) return;
    if (parseLoopbackHost(host) === null && !allowed.has(hostnameOf(host))) {
      throw new HttpError(
        403,
        "forbidden_host",
        `Host "${host}" is not this service's: it listens on loopback and answers only ` +
          `loopback names (localhost, 127.0.0.0/8, [::1]); list other names in ` +
          `HEADROOM_ALLOWED_HOSTS (--allowed-hosts)`,
      );
    }
    if (seen.size < 64) seen.add(host);
  };
}

/**
 * The cross-site check every request passes first: throws the 403 for a foreign `Host`
 * (while bound to loopback) or a foreign `Origin` on a request that can change something.
 */
export function crossSiteCheck(
  bindHost: string,
  allowedHosts: readonly string[],
  allowedOrigins: readonly string[],
): (request: Request, path: string) => void {
  const checkHost = hostCheck(bindHost, allowedHosts);
  const checkOrigin = originCheck(allowedOrigins);
  return (request, path) => {
    checkHost(request);
    checkOrigin(request, path);
  };
}

/** Methods that never change anything (and that browsers send cross-site without asking). */
const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * Refuses (403 `forbidden_origin`) a mutating request or WebSocket upgrade whose `Origin`
 * is neither the service's own origin nor one of `allowedOrigins`. A request without
 * `Origin` (curl, scripts, the OpenAI client) is not a browser's cross-site request and
 * passes. The own origin is built from the request's `Host`, which the host check has
 * already held to the loopback rule, so a rebound `http://127.0.0.1.evil.example` never
 * counts as own; the Origin is parsed by the same rule (core/loopback.ts) before comparing.
 */
function originCheck(allowedOrigins: readonly string[]): (request: Request, path: string) => void {
  const allowed = new Set(allowedOrigins);
  return (request, path) => {
    const origin = request.headers.get("origin");
    if (origin === null) return; // not a browser's cross-site request
    const upgrade = (request.headers.get("upgrade") ?? "").toLowerCase() === "websocket";
    if (!upgrade && SAFE_METHODS.has(request.method)) return;
    const own = ownOrigin(request.url, request.headers.get("host"));
    if (!sameOrigin(origin, own) && !allowed.has(origin)) {
      throw new HttpError(
        403,
        "forbidden_origin",
        `Origin "${origin}" may not call ${request.method} ${path}: only pages served ` +
          `by Headroom itself (${own}) may, or origins listed in HEADROOM_CORS_ORIGINS ` +
          `(--cors-origins)`,
      );
    }
  };
}

/**
 * True when `origin` is `own`: the same string, or both loopback by the one parser with the
 * same scheme, name and port (`http://LOCALHOST:8000` is `http://localhost:8000`).
 */
function sameOrigin(origin: string, own: string): boolean {
  if (origin === own) return true;
  const a = parseLoopbackOrigin(origin);
  const b = parseLoopbackOrigin(own);
  return a !== null && b !== null && a.hostname === b.hostname && a.port === b.port &&
    origin.split(":")[0].toLowerCase() === own.split(":")[0].toLowerCase();
}

/** The origin a browser shows for pages of this service, as the request reached it. */
function ownOrigin(url: string, host: string | null): string {
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
export function contentTypeCheck(
  types: readonly string[],
): (request: Request, path: string) => void {
  return (request, path) => {
    const header = request.headers.get("content-type");
    const type = (header ?? "").split(";")[0].trim().toLowerCase();
    const length = request.headers.get("content-length");
    const hasBody = header !== null || (length !== null && length !== "0") ||
      request.headers.has("transfer-encoding");
    if (hasBody && !types.includes(type)) {
      throw new HttpError(
        415,
        "unsupported_media_type",
        `Content-Type "${header ?? "(none)"}" is not accepted on ${request.method} ${path}: ` +
          `send ${listTypes(types)}`,
      );
    }
  };
}

/** "a", "a or b", "a, b, or c". */
function listTypes(types: readonly string[]): string {
  if (types.length <= 2) return types.join(" or ");
  return `${types.slice(0, -1).join(", ")}, or ${types.at(-1)}`;
}
