/**
 * Caps on long-lived connections: SSE streams and WebSockets each hold a subscriber
 * and a socket, so their number is bounded (503 past it) rather than left to exhaust
 * the process.
 * @module
 */
import { HttpError } from "./http_error.ts";

/** Counts open streams against a maximum. */
export class StreamLimiter {
  #open = 0;
  constructor(readonly max: number) {}

  /** Streams open now. */
  get open(): number {
    return this.#open;
  }

  /** Takes a slot; returns its release (safe to call twice). Throws a 503 HttpError when full. */
  acquire(): () => void {
    if (this.#open >= this.max) {
      throw new HttpError(
        503,
        "too_many_streams",
        `${this.#open} streams are open, the most this server allows (HEADROOM_MAX_STREAMS=${this.max}); close one or retry later`,
        { "Retry-After": "5" },
      );
    }
    this.#open++;
    let released = false;
    return () => {
      if (!released) {
        released = true;
        this.#open--;
      }
    };
  }
}
