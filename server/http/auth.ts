/**
 * The API token: which operations it guards (one rule, for the app and the
 * OpenAPI document alike) and the check itself: with a token configured, a guarded
 * route needs `Authorization: Bearer <token>`, compared in constant time.
 * @module
 */
import type { Context } from "hono";
import { getCookie } from "hono/cookie";
import type { Config } from "../../core/config.ts";
import type { RouteAuth } from "./context.ts";
import { HttpError } from "./http_error.ts";

/** The access settings the rule reads. */
export type AccessSettings = Pick<Config, "token" | "tokenForReads" | "tokenForInfer">;

/**
 * Does the token guard this method of a route under these settings? Mutating routes'
 * non-GET methods always; inference with HEADROOM_TOKEN_FOR_INFER (or _FOR_READS); other
 * API reads with HEADROOM_TOKEN_FOR_READS; pages never (the API they call is guarded).
 * Whether a token is set does not matter here: see {@link needsToken}.
 */
export function tokenGuards(
  method: string,
  auth: RouteAuth,
  settings: Omit<AccessSettings, "token">,
): boolean {
  if (auth === "page") return false;
  if (auth === "mutating" && method !== "GET") return true;
  if (auth === "infer") return settings.tokenForInfer || settings.tokenForReads;
  return settings.tokenForReads;
}

/** Does a request need the token: one is set, and {@link tokenGuards} says it guards the route. */
export function needsToken(method: string, auth: RouteAuth, settings: AccessSettings): boolean {
  return settings.token !== null && tokenGuards(method, auth, settings);
}

/** The cookie the dashboard sets with the token, accepted on GET requests only. */
export const TOKEN_COOKIE = "headroom_token";

/** Compares two strings in time that depends on their lengths only, not on where they differ. */
export function constantTimeEqual(a: string, b: string): boolean {
  const left = new TextEncoder().encode(a);
  const right = new TextEncoder().encode(b);
  let diff = left.length ^ right.length;
  const length = Math.max(left.length, right.length);
  for (let i = 0; i < length; i++) diff |= (left[i] ?? 0) ^ (right[i] ?? 0);
  return diff === 0;
}

/**
 * The token a request presents: `Authorization: Bearer …`, or on reads (GET) the
 * dashboard's cookie; null when it presents none.
 */
function presentedToken(c: Context): string | null {
  const match = /^Bearer\s+(.+)$/i.exec(c.req.header("authorization") ?? "");
  if (match) return match[1].trim();
  // A browser's EventSource cannot send a header: on reads (GET) the dashboard's
  // SameSite=Strict cookie stands in. Never on mutating requests (no CSRF that way).
  if (c.req.method === "GET") return getCookie(c, TOKEN_COOKIE)?.trim() ?? null;
  return null;
}

/** True when the request presents `token` (header, or the cookie on a GET). */
export function carriesToken(c: Context, token: string): boolean {
  const presented = presentedToken(c);
  return presented !== null && constantTimeEqual(presented, token);
}

/** The check that answers 401 unless the request carries `token`. */
export function tokenCheck(token: string): (c: Context) => void {
  return (c) => {
    const presented = presentedToken(c);
    if (presented === null) {
      throw new HttpError(
        401,
        "unauthorized",
        "This endpoint needs the API token: send Authorization: Bearer <token>",
        {
          "WWW-Authenticate": 'Bearer realm="headroom"',
        },
      );
    }
    if (!constantTimeEqual(presented, token)) {
      throw new HttpError(401, "unauthorized", "The API token is wrong", {
        "WWW-Authenticate": 'Bearer realm="headroom", error="invalid_token"',
      });
    }
  };
}
