/**
 * The API token check: with a token configured, a guarded route needs
 * `Authorization: Bearer <token>`, compared in constant time.
 * @module
 */
import type { MiddlewareHandler } from "hono";
import { HttpError } from "./errors.ts";

/** Compares two strings in time that depends on their lengths only, not on where they differ. */
export function constantTimeEqual(a: string, b: string): boolean {
  const left = new TextEncoder().encode(a);
  const right = new TextEncoder().encode(b);
  let diff = left.length ^ right.length;
  const length = Math.max(left.length, right.length);
  for (let i = 0; i < length; i++) diff |= (left[i] ?? 0) ^ (right[i] ?? 0);
  return diff === 0;
}

/** Middleware that answers 401 unless the request carries the token (a no-op when `token` is null). */
export function requireToken(token: string | null): MiddlewareHandler {
  return async (_c, next) => {
    if (token !== null) {
      const header = _c.req.header("authorization") ?? "";
      const match = /^Bearer\s+(.+)$/i.exec(header);
      if (!match) {
        throw new HttpError(
          401,
          "unauthorized",
          "This endpoint needs the API token: send Authorization: Bearer <token>",
          {
            "WWW-Authenticate": 'Bearer realm="headroom"',
          },
        );
      }
      if (!constantTimeEqual(match[1].trim(), token)) {
        throw new HttpError(401, "unauthorized", "The API token is wrong", {
          "WWW-Authenticate": 'Bearer realm="headroom", error="invalid_token"',
        });
      }
    }
    await next();
  };
}
