/**
 * The gate of exclusive sections (a switch, a test load): while a section runs, new
 * requests wait at the gate, the running ones finish first, and no other placement
 * change runs until it ends. The gate counts the requests running so a section can wait
 * for them to drain.
 * @module
 */

/** A section holding the gate: new requests wait until `done`. */
interface Section {
  label: string;
  done: Promise<void>;
}

/** Runs one operation as a scheduler decision (one at a time with every other). */
export type Decide = <T>(op: () => Promise<T>) => Promise<T>;

/** The exclusive-section gate and the count of requests running. */
export class SectionGate {
  readonly #decide: Decide;
  #section: Section | null = null;
  #running = 0;
  #drainWaiters: Array<() => void> = [];

  constructor(decide: Decide) {
    this.#decide = decide;
  }

  /** The label of the section holding the gate, or null when it is open. */
  get label(): string | null {
    return this.#section?.label ?? null;
  }

  /** True while a section holds the gate. */
  get closed(): boolean {
    return this.#section !== null;
  }

  /** Waits until the section holding the gate now ends (at once when none), or `signal` fires. */
  opened(signal?: AbortSignal): Promise<void> {
    return this.#section ? abortable(this.#section.done, signal) : Promise.resolve();
  }

  /** A request starts running: a section waits for it. */
  enter(): void {
    this.#running++;
  }

  /** A request stopped running: the last one out lets a waiting section in. */
  leave(): void {
    this.#running--;
    if (this.#running === 0) { for (const wake of this.#drainWaiters.splice(0)) wake(); }
  }

  /**
   * Runs `body` alone: new requests wait at the gate, running ones finish first, and no
   * other placement change runs until it ends. `claim` runs before the gate opens.
   */
  async run<T>(
    label: string,
    body: () => Promise<T>,
    options: { signal?: AbortSignal; claim?: () => void } = {},
  ): Promise<T> {
    while (this.#section) await abortable(this.#section.done, options.signal);
    let open!: () => void;
    const section: Section = { label, done: new Promise<void>((resolve) => (open = resolve)) };
    this.#section = section;
    try {
      while (this.#running > 0) {
        await abortable(
          new Promise<void>((resolve) => this.#drainWaiters.push(resolve)),
          options.signal,
        );
      }
      return await this.#decide(async () => {
        const result = await body();
        options.claim?.();
        return result;
      });
    } finally {
      this.#section = null;
      open();
    }
  }
}

/** Waits for `promise`, or rejects with the signal's reason when it fires first. */
function abortable<T>(promise: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}
