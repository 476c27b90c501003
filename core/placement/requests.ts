/**
 * The request path: admission (the per-pipeline queue limit, the request deadline, the
 * exclusive-section gate, the auto-switch in exclusive mode), then the run itself on a
 * pipeline placed by the policy, marked active while it runs, placed again when it was
 * unloaded before its turn, and retried after an out-of-memory error once eviction made
 * room. A client that disconnects leaves its queue; past the deadline it answers 504.
 * @module
 */
import type { Clock } from "../clock.ts";
import { PipelineError } from "../pipelines/errors.ts";
import type { RunInput, SessionDevice } from "../pipelines/protocol.ts";
import { QueueAbortedError, type SerialQueue } from "../serial_queue.ts";
import type { Eviction } from "./eviction.ts";
import type { SectionGate } from "./gate.ts";
import type { HostRunResult, PipelineHost } from "./host.ts";
import type { KeepAliveTimers } from "./keep_alive.ts";
import type { Placer } from "./place.ts";
import type { PipelineRecord, Records } from "./records.ts";

/** Default time a request may take, queue included, before it answers 504. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 120_000;

/** A request's options. */
export interface RunOptions {
  /** What asked (a route: "infer", "ocr", "stream", "chat"), for events. */
  trigger?: string;
  /** The client's signal: a disconnect removes the request from its queue. */
  signal?: AbortSignal;
  /** Models that travel together (OCR's det, cls, rec): in exclusive mode they are switched to as one. */
  group?: string[];
}

/** What the request path reads, moves and waits on. */
export interface RequestsOptions {
  host: Pick<PipelineHost, "run">;
  records: Records;
  gate: SectionGate;
  placer: Placer;
  eviction: Eviction;
  keepAlives: KeepAliveTimers;
  /** The scheduler's serial queue: one decision at a time. */
  decisions: SerialQueue;
  clock: Clock;
  mode: "shared" | "exclusive";
  /** Most requests waiting or running on one pipeline; past it 429 with Retry-After. */
  queueLimit?: number;
  /** A request past this answers 504, and a worker stuck past it is replaced. */
  requestTimeoutMs?: number;
  /** Exclusive mode: switches to `group` in its own section; `claim` runs before the gate opens. */
  autoSwitch: (
    group: string[],
    trigger: string,
    signal: AbortSignal,
    claim: () => void,
  ) => Promise<unknown>;
}

/** Admits and runs requests. */
export class Requests {
  readonly #o: RequestsOptions;

  constructor(options: RequestsOptions) {
    this.#o = options;
  }

  /**
   * Runs a request on `id`, placed by the policy: it waits while an exclusive section
   * runs (bounded by the queue limit), switches first in exclusive mode, is marked active
   * while it runs, goes to the GPU when it can (making room first), else the CPU or a
   * refusal. A client that disconnects leaves its queue; past the request timeout it
   * answers 504 and a stuck worker is replaced.
   */
  async run(id: string, input: RunInput, options: RunOptions = {}): Promise<HostRunResult> {
    const { clock, gate } = this.#o;
    const record = this.#o.records.get(id);
    const limit = this.#o.queueLimit;
    const queued = record.waiting + record.activeCount - record.holds;
    if (limit !== undefined && queued >= limit) {
      throw new PipelineError(
        "queue_full",
        `Pipeline "${id}" has ${queued} requests waiting or running (limit ${limit}); retry shortly`,
        gate.closed ? 2 : 1,
      );
    }
    const deadline = new AbortController();
    const timeoutMs = this.#o.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    const timer = clock.setTimeout(
      () =>
        deadline.abort(
          new PipelineError(
            "timeout",
            `Pipeline "${id}": the request took longer than ${timeoutMs} ms (HEADROOM_REQUEST_TIMEOUT); retry, or raise the timeout`,
          ),
        ),
      timeoutMs,
    );
    const signal = options.signal
      ? AbortSignal.any([options.signal, deadline.signal])
      : deadline.signal;
    try {
      // Waiting until admitted; #claim moves it from waiting to active in one step.
      record.waiting++;
      try {
        await this.#admit(record, options, signal);
      } catch (error) {
        record.waiting--;
        throw error;
      }
      try {
        return await this.#runAdmitted(record, input, signal, deadline.signal);
      } finally {
        record.activeCount = Math.max(0, record.activeCount - 1);
        record.lastUsedAt = clock.now();
        gate.leave();
        this.#o.keepAlives.arm(record);
      }
    } catch (error) {
      throw asRequestError(error, signal, id);
    } finally {
      clock.clearTimeout(timer);
    }
  }

  /** Waits for the gate, switches in exclusive mode, then counts the request as running. */
  async #admit(record: PipelineRecord, options: RunOptions, signal: AbortSignal): Promise<void> {
    const { gate } = this.#o;
    for (;;) {
      signal.throwIfAborted();
      if (gate.closed) {
        await gate.opened(signal);
        continue;
      }
      const group = options.group ?? [record.id];
      if (this.#o.mode === "exclusive" && !this.#groupLoaded(group)) {
        await this.#o.autoSwitch(
          group,
          options.trigger ?? "request",
          signal,
          () => this.#claim(record),
        );
        return;
      }
      this.#claim(record);
      return;
    }
  }

  /** Moves an admitted request from waiting to running, in one step. */
  #claim(record: PipelineRecord): void {
    record.waiting--;
    record.activeCount++;
    record.lastUsedAt = this.#o.clock.now();
    this.#o.gate.enter();
    this.#o.keepAlives.cancel(record);
  }

  #groupLoaded(group: string[]): boolean {
    for (const id of group) if (this.#o.records.view(id).placement === "none") return false;
    return true;
  }

  async #runAdmitted(
    record: PipelineRecord,
    input: RunInput,
    signal: AbortSignal,
    deadline: AbortSignal,
  ): Promise<HostRunResult> {
    const { placer, eviction, decisions, host } = this.#o;
    const id = record.id;
    let device: SessionDevice = await placer.ensure(id, signal);
    let reloads = 0;
    for (let attempt = 1;; attempt++) {
      try {
        return await host.run(id, input, { signal, deadline });
      } catch (error) {
        if (error instanceof PipelineError && error.code === "not_loaded" && reloads++ < 3) {
          // Unloaded between its placement and its turn (an explicit unload): place again.
          device = await placer.ensure(id, signal);
          attempt--;
          continue;
        }
        if (!(error instanceof PipelineError && error.code === "oom") || device === "cpu") {
          throw error;
        }
        device = await decisions.run(() => eviction.afterOom(id, attempt, error), signal);
      }
    }
  }
}

/** An abort (client gone, or past the deadline) as the PipelineError a route answers with. */
function asRequestError(error: unknown, signal: AbortSignal, id: string): unknown {
  if (error instanceof PipelineError) return error;
  if (error instanceof QueueAbortedError || (signal.aborted && error === signal.reason)) {
    const reason = signal.reason;
    if (reason instanceof PipelineError) return reason;
    return new PipelineError(
      "cancelled",
      `Pipeline "${id}": the client went away; the request was dropped`,
    );
  }
  return error;
}
