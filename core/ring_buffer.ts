/**
 * A fixed-capacity ring buffer: the monitor's history keeps the newest `capacity`
 * samples without ever growing or copying.
 * @module
 */

/** Holds the newest `capacity` items; pushing past it drops the oldest. */
export class RingBuffer<T> {
  #items: (T | undefined)[];
  #start = 0;
  #size = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`RingBuffer capacity must be a positive integer, got ${capacity}`);
    }
    this.#items = new Array(capacity);
  }

  /** How many items are held now. */
  get size(): number {
    return this.#size;
  }

  /** Adds an item, dropping the oldest when full. */
  push(item: T): void {
    const end = (this.#start + this.#size) % this.capacity;
    this.#items[end] = item;
    if (this.#size < this.capacity) this.#size++;
    else this.#start = (this.#start + 1) % this.capacity;
  }

  /** The newest item, or undefined when empty. */
  last(): T | undefined {
    if (this.#size === 0) return undefined;
    return this.#items[(this.#start + this.#size - 1) % this.capacity];
  }

  /** Items oldest first. */
  toArray(): T[] {
    const out: T[] = new Array(this.#size);
    for (let i = 0; i < this.#size; i++) out[i] = this.#items[(this.#start + i) % this.capacity]!;
    return out;
  }
}
