/**
 * Keep-alive (Ollama's keep_alive, llama-swap's ttl): after a model has been idle for its
 * keep-alive, it is offloaded to the CPU or unloaded. One timer per idle, loaded,
 * unpinned pipeline, on the scheduler's clock; the expiry itself runs as a scheduler
 * decision (through `expire`), so it never races another placement change.
 * @module
 */
import type { Clock } from "../clock.ts";
import type { KeepAlive, PipelineHost, PipelineRecord } from "./types.ts";

/** Runs out a keep-alive: offloads or unloads the pipeline as one scheduler decision. */
export type Expire = (
  record: PipelineRecord,
  action: KeepAlive["idleAction"],
  idleMs: number,
  ms: number,
) => Promise<void>;

/** The keep-alive timers of every pipeline. */
export class KeepAliveTimers {
  readonly #clock: Clock;
  readonly #policy: (id: string) => KeepAlive;
  readonly #host: Pick<PipelineHost, "view">;
  readonly #expire: Expire;
  #closed = false;

  /** `policy`: each model's keep-alive; `expire` runs as a decision when one runs out. */
  constructor(
    clock: Clock,
    policy: (id: string) => KeepAlive,
    host: Pick<PipelineHost, "view">,
    expire: Expire,
  ) {
    this.#clock = clock;
    this.#policy = policy;
    this.#host = host;
    this.#expire = expire;
  }

  /** The keep-alive of `id`. */
  policy(id: string): KeepAlive {
    return this.#policy(id);
  }

  /** Stops the countdown of `record`. */
  cancel(record: PipelineRecord): void {
    if (record.keepAliveTimer !== null) this.#clock.clearTimeout(record.keepAliveTimer);
    record.keepAliveTimer = null;
    record.keepAliveDeadline = null;
  }

  /** Starts the idle countdown of an idle, loaded, unpinned pipeline with a keep-alive. */
  arm(record: PipelineRecord): void {
    this.cancel(record);
    if (this.#closed || record.activeCount > 0 || record.pinned) return;
    const { ms, idleAction } = this.#policy(record.id);
    if (ms === null) return;
    const view = this.#host.view(record.id);
    if (!view || view.placement === "none") return;
    if (idleAction === "offload" && view.placement === "cpu") return;
    const clock = this.#clock;
    const since = record.lastUsedAt || clock.now();
    record.keepAliveDeadline = since + ms;
    record.keepAliveTimer = clock.setTimeout(() => {
      record.keepAliveTimer = null;
      this.#expire(record, idleAction, clock.now() - since, ms)
        .catch((error) => console.error(`Keep-alive of ${record.id} failed:`, error));
    }, Math.max(0, record.keepAliveDeadline - clock.now()));
  }

  /** Whether `record`'s keep-alive has really run out now (inside the expiry's decision). */
  due(record: PipelineRecord): boolean {
    if (record.activeCount > 0 || record.pinned || record.keepAliveDeadline === null) {
      return false;
    }
    if (this.#clock.now() < record.keepAliveDeadline) {
      this.arm(record);
      return false;
    }
    const current = this.#host.view(record.id);
    return current !== undefined && current.placement !== "none";
  }

  /** Stops every timer it is given from now on (the service stops). */
  close(): void {
    this.#closed = true;
  }
}
