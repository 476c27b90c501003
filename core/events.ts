/**
 * The event log: every placement decision, transition and failure, with its reason,
 * kept in a bounded ring and published to subscribers (the SSE stream, the dashboard).
 * @module
 */
import { RingBuffer } from "./ring_buffer.ts";
import type { HeadroomEvent, NewEvent } from "./types.ts";

/** Bounded, ordered, observable log of events. */
export class EventLog {
  #ring: RingBuffer<HeadroomEvent>;
  #seq = 0;
  #listeners = new Set<(event: HeadroomEvent) => void>();

  constructor(capacity = 1000) {
    this.#ring = new RingBuffer(capacity);
  }

  /** Records an event (numbered and timed here) and tells the subscribers. */
  emit(event: NewEvent): HeadroomEvent {
    const full = {
      seq: ++this.#seq,
      at: Date.now(),
      ...event,
      model: event.model ?? event.pipeline,
    } as HeadroomEvent;
    this.#ring.push(full);
    for (const listener of this.#listeners) {
      try {
        listener(full);
      } catch (error) {
        console.error("EventLog: a subscriber threw:", error);
      }
    }
    return full;
  }

  /**
   * Puts events saved by an earlier run back (oldest first after this call), so the log
   * shows them after a restart; new events number on from the newest.
   */
  restore(events: HeadroomEvent[]): void {
    const oldestFirst = [...events].sort((a, b) => a.seq - b.seq || a.at - b.at);
    for (const event of oldestFirst) {
      this.#ring.push(event);
      this.#seq = Math.max(this.#seq, event.seq);
    }
  }

  /** Number of the newest event (0 before any): changes whenever an event is emitted. */
  get lastSeq(): number {
    return this.#seq;
  }

  /** The newest `limit` events, newest first. */
  recent(limit = 100): HeadroomEvent[] {
    return this.#ring.toArray().slice(-limit).reverse();
  }

  /** Calls `listener` for every new event; returns the unsubscribe. */
  subscribe(listener: (event: HeadroomEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
