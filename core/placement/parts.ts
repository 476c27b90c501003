/**
 * The scheduler's parts, built once and wired to each other: each part receives only
 * what it needs (the host, the records, the device accounting, the serial queue, the
 * moves it may make), so no part imports the scheduler, and the Scheduler stays the one
 * public entry that delegates to them.
 * @module
 */
import { type Clock, systemClock } from "../clock.ts";
import { SerialQueue } from "../serial_queue.ts";
import { ChainPlacement } from "./chain.ts";
import { Eviction } from "./eviction.ts";
import { ExplicitMoves } from "./explicit.ts";
import { SectionGate } from "./gate.ts";
import { GpuAccount } from "./gpu_state.ts";
import { expireIdle, KeepAliveTimers } from "./keep_alive.ts";
import { Moves } from "./moves.ts";
import type { SchedulerOptions } from "./options.ts";
import { Placer } from "./place.ts";
import type { Emit } from "./placement_events.ts";
import { Records } from "./records.ts";
import { ReleaseWatch } from "./release_watch.ts";
import { ReleaseTracker } from "./releases.ts";
import { Reports } from "./reports.ts";
import { Requests, type RequestsOptions } from "./requests.ts";

/** Every part of one scheduler. */
export interface SchedulerParts {
  clock: Clock;
  emit: Emit;
  /** The one serial queue every decision runs in. */
  decisions: SerialQueue;
  records: Records;
  account: GpuAccount;
  releases: ReleaseWatch;
  keepAlives: KeepAliveTimers;
  moves: Moves;
  eviction: Eviction;
  placer: Placer;
  chains: ChainPlacement;
  gate: SectionGate;
  requests: Requests;
  explicit: ExplicitMoves;
  reports: Reports;
}

/** Builds the parts of a scheduler set up with `options`; `autoSwitch` is its exclusive-mode switch. */
export function buildParts(
  options: SchedulerOptions,
  autoSwitch: RequestsOptions["autoSwitch"],
): SchedulerParts {
  const { host, onInsufficientVram, footprint } = options;
  const clock = options.clock ?? systemClock;
  const emit: Emit = (event) => {
    options.events.emit(event);
  };
  const mode = options.mode ?? "shared";
  const decisions = new SerialQueue();
  const records = new Records(host);
  const tracker = new ReleaseTracker();
  const account = new GpuAccount({
    device: options.device,
    budgetFor: options.budgetFor,
    headroomBytes: options.headroomBytes,
    host,
    records,
    releases: tracker,
    clock,
  });
  const releases = new ReleaseWatch({
    tracker,
    device: options.device,
    clock,
    records,
    emit,
    waitMs: options.releaseWaitMs,
    pollMs: options.releasePollMs,
  });
  const moves = new Moves({ host, records, account, releases, emit, onInsufficientVram });
  const keepAlives = new KeepAliveTimers({
    clock,
    policy: (id) => options.keepAlive?.(id) ?? { ms: null, idleAction: "offload" },
    view: (id) => host.view(id),
    decide: (op) => decisions.run(op),
    expire: (id, action, idleMs, ms) =>
      expireIdle(
        {
          view: (one) => records.view(one),
          offload: (one, reason, trigger, log) => moves.offload(one, reason, trigger, log),
          unload: (one, reason, trigger) => moves.unload(one, reason, trigger),
          emit,
        },
        id,
        action,
        idleMs,
        ms,
      ),
  });
  const eviction = new Eviction({ host, records, account, moves, releases, emit });
  const placer = new Placer({
    records,
    account,
    moves,
    eviction,
    keepAlives,
    decisions,
    footprint,
    onInsufficientVram,
    clock,
    emit,
  });
  const gate = new SectionGate((op) => decisions.run(op));
  return {
    clock,
    emit,
    decisions,
    records,
    account,
    releases,
    keepAlives,
    moves,
    eviction,
    placer,
    gate,
    chains: new ChainPlacement({ host, records, account, placer, decisions, footprint }),
    requests: new Requests({
      host,
      records,
      gate,
      placer,
      eviction,
      keepAlives,
      decisions,
      clock,
      mode,
      queueLimit: options.queueLimit,
      requestTimeoutMs: options.requestTimeoutMs,
      autoSwitch,
    }),
    explicit: new ExplicitMoves({ records, moves, releases, decisions, clock }),
    reports: new Reports({
      host,
      clock,
      records,
      account,
      releases,
      keepAlives,
      gate,
      mode,
      onInsufficientVram,
    }),
  };
}
