/**
 * Says on every answer when the store is degraded (the last KV write failed: a full disk),
 * so a load that happened but whose event could not be kept answers 200 with the reason
 * in a `Headroom-Storage` header instead of a 500 that says the load failed.
 * @module
 */
import type { MiddlewareHandler } from "hono";
import type { ProfileStore } from "../../core/store/profiles.ts";

/** The header that carries the store's degraded state. */
export const STORAGE_HEADER = "Headroom-Storage";

/** Adds {@link STORAGE_HEADER} to answers while `store` is degraded. */
export function storageNotice(store: Pick<ProfileStore, "health">): MiddlewareHandler {
  return async (c, next) => {
    await next();
    const health = store.health();
    if (health.state !== "degraded") return;
    const detail =
      `${health.droppedWrites} write(s) not kept since start (${health.droppedEvents} ` +
      `events); last: ${health.lastError ?? "unknown"}`;
    // A header value is one line of visible ASCII.
    c.res.headers.set(STORAGE_HEADER, `degraded; ${detail}`.replace(/[^\x20-\x7e]/g, "?"));
  };
}
