/**
 * Says on every answer when the store is degraded (the last KV write failed: a full disk),
 * so a load that happened but whose event could not be kept answers 200 with the reason
 * in a `Headroom-Storage` header instead of a 500 that says the load failed.
 * @module
 */
import type { ProfileStore } from "../../core/store/profiles.ts";

/** The header that carries the store's degraded state. */
export const STORAGE_HEADER = "Headroom-Storage";

/**
 * What adds {@link STORAGE_HEADER} to an answer while `store` is degraded: the answer
 * itself, with the header when the store says so.
 */
export function storageNotice(
  store: Pick<ProfileStore, "health">,
): (response: Response) => Response {
  return (response) => {
    const health = store.health();
    if (health.state !== "degraded") return response;
    const detail =
      `${health.droppedWrites} write(s) not kept since start (${health.droppedEvents} ` +
      `events); last: ${health.lastError ?? "unknown"}`;
    // A header value is one line of visible ASCII.
    response.headers.set(STORAGE_HEADER, `degraded; ${detail}`.replace(/[^\x20-\x7e]/g, "?"));
    return response;
  };
}
