/**
 * Keep-alive (Ollama's keep_alive, llama-swap's ttl): after a model has been idle for its
 * keep-alive, it is offloaded to the CPU or unloaded. One timer per idle, loaded,
 * unpinned pipeline, on the scheduler's clock; the expiry itself runs as a scheduler
 * decision (through `expire`), so it never races another placement change.
 * @module
 */
import type { Clock, TimerHandle } from "../clock.ts";
import type { HostView } from "./host.ts";
import { type Emit, keepAliveExpired } from "./placement_events.ts";

/** Keep-alive of one model: after `ms` idle it is offloaded or unloaded. */
export interface KeepAlive {
  /** Null: kept until something needs the room. */
  ms: number | null;
  idleAction: "offload" | "unload";
}

/** The part of a scheduler record keep-alive reads and writes. */
export interface KeepAliveState {
  id: string;
  activeCount: number;
  pinned: boolean;
  lastUsedAt: number;
  keepAliveTimer: TimerHandle | null;
  /** When it runs out (ms since the epoch), or null: the dashboard's countdown. */
  keepAliveDeadline: number | null;
}

/** What keep-alive needs from the scheduler. */
export interface KeepAliveOptions {
  clock: Clock;
  /** Each model's keep-alive (per model, or the service's default). */
  policy: (id: string) => KeepAlive;
  view: (id: string) => HostView | undefined;
  /** Runs `op` as a scheduler decision (one at a time with every other). */
  decide: (op: () => Promise<void>) => Promise<void>;
  /** Offloads or unloads `id`, logging why (inside a decision). */
  expire: (
    id: string,
    action: KeepAlive["idleAction"],
    idleMs: number,
    ms: number,
  ) => Promise<void>;
}

/** The keep-alive timers of every pipeline. */
export class KeepAliveTimers {
  readonly #o: KeepAliveOptions;
  #closed = false;

  constructor(options: KeepAliveOptions) {
    this.#o = options;
  }

  /** The keep-alive of `id`. */
  policy(id: string): KeepAlive {
    return this.#o.policy(id);
  }

  /** Stops the countdown of `state`. */
  cancel(state: KeepAliveState): void {
    if (state.keepAliveTimer !== null) this.#o.clock.clearTimeout(state.keepAliveTimer);
    state.keepAliveTimer = null;
    state.keepAliveDeadline = null;
  }

  /** Starts the idle countdown of an idle, loaded, unpinned pipeline with a keep-alive. */
  arm(state: KeepAliveState): void {
    this.cancel(state);
    if (this.#closed || state.activeCount > 0 || state.pinned) return;
    const { ms, idleAction } = this.#o.policy(state.id);
    if (ms === null) return;
    const view = this.#o.view(state.id);
    if (!view || view.placement === "none") return;
    if (idleAction === "offload" && view.placement === "cpu") return;
    const { clock } = this.#o;
    const since = state.lastUsedAt || clock.now();
    state.keepAliveDeadline = since + ms;
    state.keepAliveTimer = clock.setTimeout(() => {
      state.keepAliveTimer = null;
      this.#o.decide(async () => {
        if (state.activeCount > 0 || state.pinned || state.keepAliveDeadline === null) return;
        if (clock.now() < state.keepAliveDeadline) return this.arm(state);
        const current = this.#o.view(state.id);
        if (!current || current.placement === "none") return;
        await this.#o.expire(state.id, idleAction, clock.now() - since, ms);
        state.keepAliveDeadline = null;
      }).catch((error) => console.error(`Keep-alive of ${state.id} failed:`, error));
    }, Math.max(0, state.keepAliveDeadline - clock.now()));
  }

  /** Stops every timer it is given from now on (the service stops). */
  close(): void {
    this.#closed = true;
  }
}

/** The locked moves an expiry makes (the scheduler's, lent while it holds a decision). */
export interface ExpiryMoves {
  view(id: string): HostView;
  offload(id: string, reason: string, trigger: string, log: boolean): Promise<void>;
  unload(id: string, reason: string, trigger: string): Promise<void>;
  emit: Emit;
}

/** Keep-alive ran out for `id`: offloads or unloads it, logging why (inside a decision). */
export async function expireIdle(
  moves: ExpiryMoves,
  id: string,
  action: KeepAlive["idleAction"],
  idleMs: number,
  ms: number,
): Promise<void> {
  const reason = `idle ${Math.round(idleMs / 1000)} s, past its keep-alive of ${
    Math.round(ms / 1000)
  } s`;
  if (action === "unload") await moves.unload(id, reason, "keep-alive");
  else if (moves.view(id).placement === "gpu") {
    await moves.offload(id, reason, "keep-alive", false);
  }
  moves.emit(keepAliveExpired(id, action, reason, idleMs));
}
