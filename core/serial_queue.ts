/**
 * One serial queue type for the whole service: operations run one at a time, in the
 * order they were queued; a failed one does not stop the next. An operation queued with
 * an abort signal that fires before its turn is dropped without running (a client that
 * disconnected no longer holds the queue).
 * @module
 */

/** Thrown (as the queued promise's rejection) for an operation dropped by its signal. */
export class QueueAbortedError extends Error {
  override name = "QueueAbortedError";
}

/** Runs queued async operations one at a time. */
export class SerialQueue {
  #tail: Promise<unknown> = Promise.resolve();
  #pending = 0;

  /** Operations queued or running. */
  get pending(): number {
    return this.#pending;
  }

  /**
   * Runs `op` after every operation queued before it has settled. With `signal`, an
   * operation whose signal fired before its turn rejects with {@link QueueAbortedError}
   * and never runs.
   */
  run<T>(op: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    this.#pending++;
    let started = false;
    const turn = () => {
      if (signal?.aborted) {
        return Promise.reject(new QueueAbortedError(`dropped from the queue: ${reason(signal)}`));
      }
      started = true;
      return op();
    };
    const result = this.#tail.then(turn, turn);
    const done = result.finally(() => this.#pending--);
    this.#tail = done.catch(() => {});
    if (!signal) return done;
    // A signal that fires before the turn answers at once; the turn is skipped when it comes.
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => {
        if (!started) {
          reject(new QueueAbortedError(`dropped from the queue: ${reason(signal)}`));
        }
      };
      if (signal.aborted) onAbort();
      else signal.addEventListener("abort", onAbort, { once: true });
      done.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
    });
  }

  /** Settles once everything queued so far has settled. */
  idle(): Promise<void> {
    return this.#tail.then(() => {});
  }
}

function reason(signal: AbortSignal): string {
  const why = signal.reason;
  return why instanceof Error ? why.message : String(why ?? "aborted");
}
