/**
 * The Scheduler: the only owner of placement, read top to bottom the way ollama's
 * `server/sched.go` reads. One record per pipeline (`#records`), one serial queue every
 * decision runs in (`#decisions`), and the only path that moves a pipeline: requests and
 * their auto-load, explicit load/offload/rehydrate/unload/pin, chains, switches and test
 * loads (exclusive sections), headroom enforcement, keep-alive, the parity verdict.
 *
 * Policy: keep free VRAM above the headroom by moving idle GPU pipelines to the CPU,
 * least recently used first and only the shortfall; count released bytes until the
 * driver shows them (no second eviction for the same shortfall); bring a pipeline to the
 * GPU on demand with out-of-memory retry (evict one more, at most {@link MAX_OOM_RETRIES}
 * times, then the CPU or a refusal), for every route, streams included. Active and pinned
 * pipelines are never evicted. Every decision is logged as a typed event with its reason.
 *
 * "Why was X evicted?": the `eviction` event (events.ts `evicted`) names its reason, code
 * and trigger; {@link Scheduler} `#evict` is where it was chosen, called from `#makeRoom`
 * (a placement), `#afterOom` or `#restoreHeadroom`.
 *
 * Beside it: budget.ts (the pure arithmetic), releases.ts (bytes until the driver shows
 * them), sections.ts (the gate, switch and test load), keep_alive.ts (idle timers),
 * events.ts (every event placement logs), measure.ts (the device and process readings),
 * types.ts (the shared types).
 * @module
 */
import type { EventLog } from "../events.ts";
import { type Clock, systemClock } from "../clock.ts";
import { PipelineError } from "../pipelines/pipeline_error.ts";
import type { RunInput, SessionDevice } from "../pipelines/protocol.ts";
import { QueueAbortedError, SerialQueue } from "../serial_queue.ts";
import type {
  EvictionReason,
  HostReport,
  ModelAction,
  ModelRow,
  Priority,
  SchedulerStatus,
} from "../types.ts";
import { formatBytes } from "../units.ts";
import {
  availableBytes,
  canFitChain,
  chooseEvictions,
  estimateModelVram,
  type EvictionCandidate,
  type FitResult,
  footprintOf,
  gpuBytesOf,
  type GpuState,
  type ModelEstimate,
  type ModelFootprint,
  type PlacedPipeline,
} from "./budget.ts";
import {
  type Emit,
  evicted,
  keepAliveExpired,
  loadFailed,
  movedToCpu,
  outOfMemory,
  pinChanged,
  placedOnGpu,
  preloadFailed,
  refusedGpu,
  releaseUnshown,
  servesOnCpu,
  trackedLeak,
  unloaded,
} from "./events.ts";
import { KeepAliveTimers } from "./keep_alive.ts";
import { RequestFigures } from "../request_figures.ts";
import { RELEASE_CHECK_MIN_BYTES, Releases, type ReleaseTracking } from "./releases.ts";
import {
  ExclusiveLine,
  SectionGate,
  type SectionOps,
  switchLocked,
  testLoadLocked,
  type Waiter,
} from "./sections.ts";
import type {
  DeviceView,
  GpuReading,
  HostRunOptions,
  HostRunResult,
  HostView,
  KeepAlive,
  Meter,
  ModelSizes,
  PipelineHost,
  PipelineRecord,
  ReleaseOutcome,
  SwitchResult,
  TestLoadEvent,
} from "./types.ts";

/** Most out-of-memory retries (each after evicting one more idle pipeline). */
export const MAX_OOM_RETRIES = 3;

/** Default time a request may take, queue included, before it answers 504. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 120_000;

/** How a Scheduler is set up: what it drives, what it reads, and the policy's settings. */
export interface SchedulerOptions {
  host: PipelineHost;
  device: DeviceView;
  events: EventLog;
  /** Headroom's allowance in bytes for a device total (budget.ts `budgetBytes` of the configured budget). */
  budgetFor: (totalBytes: number) => number;
  /** Free VRAM to keep, exactly as configured. */
  headroomBytes: number;
  /** Each model's file size and saved measured peak: with the host's view, the estimate's inputs. */
  sizes: ModelSizes;
  onInsufficientVram: "cpu" | "reject";
  mode?: "shared" | "exclusive";
  /** Most requests waiting or running on one pipeline; past it 429 with Retry-After. */
  queueLimit?: number;
  /** A request past this answers 504, and a worker stuck past it is replaced. */
  requestTimeoutMs?: number;
  /** How long a release may take to show before it is flagged as a leak (default 2 s). */
  releaseWaitMs?: number;
  /** How often a release is checked against the driver (default 20 ms). */
  releasePollMs?: number;
  keepAlive?: (id: string) => KeepAlive;
  /** Each model's default priority (the models file's `priority`); "normal" when absent. */
  defaultPriority?: (id: string) => Priority | undefined;
  /**
   * Exclusive mode's fairness limit (HEADROOM_MAX_WAIT): the loaded model's requests are
   * served before switching away, but none waits longer than this for its model because
   * others kept coming (see {@link ExclusiveLine}). Absent: 0, first come, first served.
   */
  maxWaitMs?: number;
  meter?: Meter;
  clock?: Clock;
}

/** A request's options. */
export interface RunOptions {
  /** What asked (a route: "infer", "ocr", "stream", "chat"), for events. */
  trigger?: string;
  /** The client's signal: a disconnect removes the request from its queue. */
  signal?: AbortSignal;
  /** Models that travel together (OCR's det, cls, rec): in exclusive mode they are switched to as one. */
  group?: string[];
  /** The request's priority ("normal" when absent): see {@link Priority}. */
  priority?: Priority;
}

/** Where each member of a chain is after {@link Scheduler.placeChain}. */
export type ChainPlacements = Record<string, "gpu" | "cpu" | "none">;

/** Why a pipeline whose parity check failed is on the CPU. */
const MISMATCH_REASON = "its GPU and CPU outputs disagree";

/** The placement owner. */
export class Scheduler {
  readonly #host: PipelineHost;
  readonly #device: DeviceView;
  readonly #sizes: ModelSizes;
  readonly #budgetFor: (totalBytes: number) => number;
  readonly #headroomBytes: number;
  readonly #onInsufficientVram: "cpu" | "reject";
  readonly #mode: "shared" | "exclusive";
  readonly #queueLimit: number | undefined;
  readonly #requestTimeoutMs: number;
  readonly #meter: Meter | undefined;
  readonly #clock: Clock;
  readonly #emit: Emit;
  /** One record per pipeline, keyed by id (ollama's `loaded` map). */
  readonly #records = new Map<string, PipelineRecord>();
  /** The one serial queue every decision runs in. */
  readonly #decisions = new SerialQueue();
  readonly #releases: Releases;
  readonly #keepAlives: KeepAliveTimers;
  readonly #gate: SectionGate;
  /** Each group's last measured switch, for a switch to models already loaded alone. */
  readonly #lastSwitch = new Map<string, SwitchResult>();
  readonly #sectionOps: SectionOps;
  /** Exclusive mode's order of waiting requests (the fairness limit). */
  readonly #line: ExclusiveLine;
  readonly #defaultPriority: (id: string) => Priority;
  /** What each model's requests did (counts by outcome, durations): `/metrics` reads it. */
  readonly requests = new RequestFigures();

  constructor(options: SchedulerOptions) {
    this.#host = options.host;
    this.#device = options.device;
    this.#sizes = options.sizes;
    this.#budgetFor = options.budgetFor;
    this.#headroomBytes = options.headroomBytes;
    this.#onInsufficientVram = options.onInsufficientVram;
    this.#mode = options.mode ?? "shared";
    this.#queueLimit = options.queueLimit;
    this.#requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.#meter = options.meter;
    this.#clock = options.clock ?? systemClock;
    const events = options.events;
    this.#emit = (event) => {
      events.emit(event);
    };
    const defaultPriority = options.defaultPriority;
    this.#defaultPriority = (id) => defaultPriority?.(id) ?? "normal";
    for (const id of this.#host.ids()) {
      this.#records.set(id, newRecord(id, this.#defaultPriority(id)));
    }
    this.#releases = new Releases(this.#device, this.#clock, this.#emit, {
      waitMs: options.releaseWaitMs,
      pollMs: options.releasePollMs,
    });
    const keepAlive = options.keepAlive;
    this.#keepAlives = new KeepAliveTimers(
      this.#clock,
      (id) => keepAlive?.(id) ?? { ms: null, idleAction: "offload" },
      this.#host,
      (record, action, idleMs, ms) =>
        this.#decisions.run(() => this.#expireIdle(record, action, idleMs, ms)),
    );
    this.#gate = new SectionGate((op) => this.#decisions.run(op));
    this.#line = new ExclusiveLine({
      gate: this.#gate,
      clock: this.#clock,
      maxWaitMs: options.maxWaitMs ?? 0,
      loaded: (group) => group.every((id) => this.#view(id).placement !== "none"),
    });
    this.#sectionOps = {
      host: this.#host,
      view: (id) => this.#view(id),
      record: (id) => this.#record(id),
      onInsufficientVram: this.#onInsufficientVram,
      readFresh: () => this.#device.read("fresh"),
      state: (reading) => this.#state(reading, "members only"),
      footprint: (id) => this.#footprint(id),
      unload: (id, reason, trigger) => this.#unload(id, reason, trigger),
      place: (id, device, trigger) => this.#place(id, device, trigger),
      awaitReleases: (ids) => this.#releases.settled(ids),
      meter: this.#meter,
      emit: this.#emit,
      lastSwitch: this.#lastSwitch,
    };
  }

  // --- reading ------------------------------------------------------------------------------

  /** shared or exclusive. */
  get mode(): "shared" | "exclusive" {
    return this.#mode;
  }

  /** Where pipelines load when nothing says otherwise. */
  get defaultDevice(): SessionDevice {
    return this.#host.defaultDevice;
  }

  /** The headroom in force (exactly as configured). */
  get headroomBytes(): number {
    return this.#headroomBytes;
  }

  /** True when a GPU can take pipelines now (a device is there and not lost). */
  gpuUsable(): boolean {
    return usable(this.#device.read("sampled"));
  }

  /**
   * Throws the error an unknown id gets (404: unknown_model, naming the known ids) and
   * does nothing else: for a route to refuse an unknown model before it starts work.
   */
  require(id: string): void {
    this.#record(id);
  }

  /** The policy's figures, for the API. */
  status(): SchedulerStatus {
    const state = this.#state(this.#device.read("sampled"), "members only");
    const pipelines: SchedulerStatus["pipelines"] = [];
    for (const record of this.#records.values()) {
      pipelines.push({
        id: record.id,
        activeCount: record.activeCount,
        pinned: record.pinned,
        lastUsedAt: record.lastUsedAt,
        idleMs: record.lastUsedAt ? Math.max(0, state.now - record.lastUsedAt) : 0,
        keepAliveDeadline: record.keepAliveDeadline,
        idleAction: this.#keepAlives.policy(record.id).idleAction,
        priority: record.priority,
      });
    }
    return {
      budgetBytes: state.budgetBytes,
      headroomBytes: state.headroomBytes,
      availableBytes: availableBytes(state, this.#host.trackedBytes()),
      onInsufficientVram: this.#onInsufficientVram,
      mode: this.#mode,
      releasingBytes: this.#releases.releasingBytes,
      section: this.#gate.label,
      pipelines,
    };
  }

  /** One model's row: the host's report with the record's pin, last use, leak, keep-alive and activity, and the actions it allows now. */
  model(id: string): ModelRow {
    return this.#row(id, this.#device.read("sampled").state !== "none", this.#clock.now());
  }

  /** Every model's row, in catalog order (the VRAM report's one row per model). */
  list(): ModelRow[] {
    const gpu = this.#device.read("sampled").state !== "none";
    const now = this.#clock.now();
    return this.#host.ids().map((id) => this.#row(id, gpu, now));
  }

  #row(id: string, gpu: boolean, now: number): ModelRow {
    const record = this.#record(id);
    const report = this.#host.report(id);
    const row: Omit<ModelRow, "actions"> = {
      ...report,
      // Known from the files at start, so a restart (no load yet) keeps it in the row.
      modelBytes: report.modelBytes ?? (this.#sizes.fileBytes(id) || null),
      pinned: record.pinned,
      lastUsedAt: record.lastUsedAt || null,
      leak: record.leak,
      keepAliveDeadline: record.keepAliveDeadline,
      cpuReason: report.placement === "cpu" ? record.cpuReason : null,
      activeCount: record.activeCount,
      idleMs: record.lastUsedAt ? Math.max(0, now - record.lastUsedAt) : 0,
      idleAction: this.#keepAlives.policy(id).idleAction,
      takenAt: now,
    };
    return { ...row, actions: modelActions({ ...report, pinned: record.pinned }, { gpu }) };
  }

  /**
   * The pre-flight check for a chain, changing nothing. When the chain fits without
   * evictions it costs the same at 10 or 10,000 pipelines: only the members are looked at
   * (everything else ours counts as one unmovable block).
   */
  check(ids: string[]): FitResult {
    for (const id of ids) this.#record(id);
    const reading = this.#device.read("sampled");
    const footprints = ids.map((id) => this.#footprint(id));
    const small = this.#state(reading, "members only");
    let membersOnGpu = 0;
    const seen = new Set<string>();
    for (const id of ids) {
      const view = this.#view(id);
      if (view.placement !== "gpu" || seen.has(id)) continue;
      seen.add(id);
      membersOnGpu += view.gpuBytes;
      small.pipelines.push(placed(this.#record(id), view));
    }
    const rest = this.#host.trackedBytes() - membersOnGpu;
    if (rest > 0) {
      small.pipelines.push({
        id: "",
        placement: "gpu",
        gpuBytes: rest,
        lastUsedAt: 0,
        activeCount: 1,
        pinned: true,
        priority: "high",
      });
    }
    const quick = canFitChain(footprints, small);
    if (quick.fits || !small.available) return quick;
    return canFitChain(footprints, this.#state(reading, "every pipeline"));
  }

  // --- requests -------------------------------------------------------------------------------

  /**
   * Runs a request on `id`, placed by the policy: it waits while an exclusive section
   * runs (bounded by the queue limit), switches first in exclusive mode, is marked active
   * while it runs, goes to the GPU when it can (making room first), else the CPU or a
   * refusal; an out-of-memory error evicts one more and retries (the one OOM policy). A
   * client that disconnects leaves its queue; past the request timeout it answers 504 and
   * a stuck worker is replaced. It runs at its priority (the request's, else its model's
   * default), which becomes the pipeline's (eviction takes lower ones first) and orders
   * the pipeline's queue on the host; in exclusive mode it waits in the line.
   */
  async run(id: string, input: RunInput, options: RunOptions = {}): Promise<HostRunResult> {
    const record = this.#record(id);
    const arrivedAt = performance.now();
    try {
      const result = await this.#run(record, input, options);
      this.requests.answered(id, {
        totalMs: performance.now() - arrivedAt,
        queueMs: result.queueMs,
        computeMs: result.ms,
      });
      return result;
    } catch (error) {
      this.requests.failed(id, error instanceof PipelineError ? error.code : "internal");
      throw error;
    }
  }

  /** {@link run} for a known model: admission, the deadline, the run. */
  async #run(record: PipelineRecord, input: RunInput, options: RunOptions): Promise<HostRunResult> {
    const id = record.id;
    const limit = this.#queueLimit;
    const queued = record.waiting + record.activeCount - record.holds;
    if (limit !== undefined && queued >= limit) {
      throw new PipelineError(
        "queue_full",
        `Pipeline "${id}" has ${queued} requests waiting or running (limit ${limit}); retry shortly`,
        this.#gate.closed ? 2 : 1,
      );
    }
    const priority = options.priority ?? this.#defaultPriority(id);
    record.priority = priority; // a pipeline's priority is its last admitted request's
    // Two signals: the deadline alone (a stuck worker is replaced only past it), and the
    // request's, which either the deadline or the caller's own signal ends. Wired by hand:
    // AbortSignal.any's weak references cost the collector on every request.
    const deadline = new AbortController();
    const request = options.signal ? new AbortController() : deadline;
    const timeoutMs = this.#requestTimeoutMs;
    const timer = this.#clock.setTimeout(() => {
      const reason = new PipelineError(
        "timeout",
        `Pipeline "${id}": the request took longer than ${timeoutMs} ms (HEADROOM_REQUEST_TIMEOUT); retry, or raise the timeout`,
      );
      deadline.abort(reason);
      request.abort(reason);
    }, timeoutMs);
    const callerLeft = () => request.abort(options.signal!.reason);
    if (options.signal?.aborted) callerLeft();
    else options.signal?.addEventListener("abort", callerLeft, { once: true });
    const signal = request.signal;
    try {
      // Waiting until admitted; #claim moves it from waiting to active in one step.
      record.waiting++;
      try {
        await this.#admit(record, { ...options, priority }, signal);
      } catch (error) {
        record.waiting--;
        throw error;
      }
      try {
        return await this.#runAdmitted(record, input, {
          signal,
          deadline: deadline.signal,
          priority,
        });
      } finally {
        record.activeCount = Math.max(0, record.activeCount - 1);
        record.lastUsedAt = this.#clock.now();
        this.#gate.leave();
        this.#keepAlives.arm(record);
      }
    } catch (error) {
      throw asRequestError(error, signal, id);
    } finally {
      this.#clock.clearTimeout(timer);
      options.signal?.removeEventListener("abort", callerLeft);
    }
  }

  /**
   * Waits for the gate, then counts the request as running; in exclusive mode it waits in
   * the line instead ({@link ExclusiveLine}: the loaded model's requests first, within the
   * fairness limit), which either claims it or has it switch to its model.
   */
  async #admit(record: PipelineRecord, options: RunOptions, signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    if (this.#mode === "exclusive") return await this.#queueExclusive(record, options, signal);
    while (this.#gate.closed) await this.#gate.opened(signal);
    this.#claim(record);
  }

  /** Exclusive mode: waits in the line until it runs on the loaded models or switches to its own. */
  #queueExclusive(record: PipelineRecord, options: RunOptions, signal: AbortSignal): Promise<void> {
    const group = options.group ?? [record.id];
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        group,
        priority: options.priority ?? "normal",
        arrivedAt: this.#clock.now(),
        go: (turn) => {
          signal.removeEventListener("abort", onAbort);
          if (turn === "run") {
            this.#claim(record);
            resolve();
            return;
          }
          const switched = this.#switch(group, {
            trigger: options.trigger ?? "request",
            auto: true,
            signal,
            claim: () => this.#claim(record),
          });
          switched.then(() => resolve(), reject);
        },
      };
      const onAbort = () => {
        this.#line.leave(waiter);
        reject(signal.reason);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      this.#line.join(waiter);
    });
  }

  /** Moves an admitted request from waiting to running, in one step. */
  #claim(record: PipelineRecord): void {
    record.waiting--;
    record.activeCount++;
    record.lastUsedAt = this.#clock.now();
    this.#gate.enter();
    this.#keepAlives.cancel(record);
  }

  /** The run itself: placed first, placed again when unloaded before its turn, retried after an out-of-memory error. */
  async #runAdmitted(
    record: PipelineRecord,
    input: RunInput,
    run: Required<Pick<HostRunOptions, "signal" | "deadline" | "priority">>,
  ): Promise<HostRunResult> {
    const id = record.id;
    const signal = run.signal;
    await this.#ensure(id, signal);
    let reloads = 0;
    for (let attempt = 1;; attempt++) {
      try {
        return await this.#host.run(id, input, run);
      } catch (error) {
        if (error instanceof PipelineError && error.code === "not_loaded" && reloads++ < 3) {
          // Unloaded between its placement and its turn (an explicit unload): place again.
          await this.#ensure(id, signal);
          attempt--;
          continue;
        }
        // Out of memory on the GPU: the one OOM policy. Where it ran is where it is now (a
        // move to the GPU asked for in the background may have landed before its turn).
        const onGpu = this.#view(id).placement === "gpu";
        if (!(error instanceof PipelineError && error.code === "oom") || !onGpu) throw error;
        await this.#decisions.run(() => this.#afterOom(id, attempt, error), signal);
      }
    }
  }

  /** Marks a stream as open on `id`: an active pipeline is never evicted. */
  markActive(id: string): void {
    const record = this.#record(id);
    record.activeCount++;
    record.holds++;
    record.lastUsedAt = this.#clock.now();
    this.#keepAlives.cancel(record);
  }

  /** Marks a stream on `id` as closed. */
  markIdle(id: string): void {
    const record = this.#record(id);
    if (record.holds > 0) {
      record.holds--;
      record.activeCount = Math.max(0, record.activeCount - 1);
    }
    record.lastUsedAt = this.#clock.now();
    this.#keepAlives.arm(record);
  }

  // --- placing ----------------------------------------------------------------------------------

  /** Brings `id` to the GPU if the policy allows (else the CPU); answers where it is. */
  place(id: string): Promise<SessionDevice> {
    try {
      return this.#ensure(id);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * {@link place} as one decision, unless `id` is on the GPU already (an active pipeline is
   * never evicted) or on the CPU with no GPU to go to. Loads of one model never hold
   * requests to a model already loaded: on the CPU while another decision runs (a slow
   * load, a switch's unload), it runs there at once, and its move to the GPU is asked for
   * behind that decision ({@link #promoteLater}). In reject mode a request on the CPU goes
   * to the GPU or is refused, so it waits for its decision.
   */
  #ensure(id: string, signal?: AbortSignal): Promise<SessionDevice> {
    const placement = this.#view(id).placement;
    if (placement === "gpu") return Promise.resolve("gpu");
    if (placement === "cpu") {
      // No GPU to move to: nothing to decide, so nothing to wait for.
      if (this.#device.read("sampled").state === "none") return Promise.resolve("cpu");
      // With the CPU fallback (in reject mode the request itself waits for the GPU or a refusal).
      if (this.#decisions.pending > 0 && this.#onInsufficientVram === "cpu") {
        this.#promoteLater(id);
        return Promise.resolve("cpu");
      }
    }
    return this.#decisions.run(() => this.#place(id, "gpu", "request"), signal);
  }

  /** Ids whose move to the GPU is queued behind a running decision (one each). */
  readonly #promotions = new Set<string>();

  /**
   * Queues `id`'s move to the GPU (the policy's placement, as a request would ask) behind
   * the decisions running now, once however many requests ask. A failure is logged by the
   * move itself (a `load-failed` or `oom` event), and the next request asks again.
   */
  #promoteLater(id: string): void {
    if (this.#promotions.has(id)) return;
    this.#promotions.add(id);
    this.#decisions.run(async () => {
      this.#promotions.delete(id);
      if (this.#view(id).placement === "cpu") await this.#place(id, "gpu", "request");
    }).catch(() => {});
  }

  /**
   * Brings `id` to `want` inside a decision: the CPU when asked; the GPU when a usable GPU
   * is there and the parity verdict allows, after making room, with out-of-memory retries;
   * otherwise the CPU or a refusal, as configured.
   */
  async #place(id: string, want: SessionDevice, trigger: string): Promise<SessionDevice> {
    const record = this.#record(id);
    try {
      return await this.#placeOn(record, want, trigger);
    } finally {
      // Keep-alive counts from every placement (Ollama's starts at load), not only from a
      // request: a model loaded and never used expires too. An active one is not armed.
      this.#keepAlives.arm(record);
    }
  }

  /** {@link #place}'s decision itself. */
  async #placeOn(
    record: PipelineRecord,
    want: SessionDevice,
    trigger: string,
  ): Promise<SessionDevice> {
    const id = record.id;
    const view = this.#view(id);
    if (want === "cpu") {
      if (view.placement === "gpu") await this.#offload(id, "requested", trigger);
      else if (view.placement !== "cpu") await this.#load(id, "cpu");
      record.cpuReason = null;
      return "cpu";
    }
    if (view.placement === "gpu") return "gpu";
    const reading = this.#device.read("fresh");
    if (reading.state === "none") return await this.#toCpu(id, "no GPU is usable", trigger);
    if (reading.state === "lost") {
      const why = `the GPU is lost (${reading.error ?? "driver error"})`;
      if (this.#onInsufficientVram === "reject") {
        throw new PipelineError(
          "gpu_lost",
          `${id} cannot go to the GPU: ${why}. Retry when it recovers, or set HEADROOM_ON_INSUFFICIENT_VRAM=cpu.`,
          5,
        );
      }
      return await this.#toCpu(id, why, trigger);
    }
    if (view.gpuMismatch) return await this.#toCpu(id, MISMATCH_REASON, trigger);
    const estimate = estimateModelVram(this.#footprint(id));
    if (await this.#makeRoom(id, estimate, reading, trigger) === "cpu") return "cpu";
    for (let attempt = 1;; attempt++) {
      try {
        const before = this.#device.read("fresh");
        await this.#load(id, "gpu");
        this.#noteLoadSeen(record, before);
        if (this.#view(id).gpuMismatch) {
          // The host's parity check, run at this first GPU load, found the outputs disagree.
          await this.#offload(id, MISMATCH_REASON, trigger, { log: false });
          record.cpuReason = MISMATCH_REASON;
          return "cpu";
        }
        record.lastUsedAt = this.#clock.now(); // just placed counts as just used
        record.cpuReason = null;
        this.#emit(placedOnGpu(id, estimate, trigger));
        return "gpu";
      } catch (error) {
        if (error instanceof PipelineError && error.code === "no_webgpu") {
          return await this.#toCpu(id, `the GPU could not take it (${error.message})`);
        }
        if (!(error instanceof PipelineError && error.code === "oom")) throw error;
        if (await this.#afterOom(id, attempt, error) === "cpu") return "cpu";
      }
    }
  }

  // --- evicting ---------------------------------------------------------------------------------

  /**
   * Makes room for `estimate` of `id` on the GPU, evicting and waiting for the releases
   * to show; answers "gpu" when there is room now, or what the no-room rule answered
   * ("cpu") when evicting every idle pipeline would not be enough.
   */
  async #makeRoom(
    id: string,
    estimate: ModelEstimate,
    reading: GpuReading,
    trigger: string,
  ): Promise<SessionDevice> {
    const exclude = new Set([id]);
    let room = this.#state(reading, "every pipeline");
    for (;;) {
      const available = availableBytes(room, gpuBytesOf(room));
      const shortfall = estimate.bytes - available;
      // On a driver error the figures are old: evict nothing on them.
      const evictions = reading.state === "error" ? [] : chooseEvictions(room, shortfall, exclude);
      const freed = evictions.reduce((sum, e) => sum + e.bytes, 0);
      if (shortfall > 0 && freed < shortfall) {
        return await this.#noRoom(
          id,
          `${id} needs ${formatBytes(estimate.bytes)} (${estimate.basis} estimate); ${
            formatBytes(Math.max(0, available))
          } free above the ${
            formatBytes(room.headroomBytes)
          } headroom, and evicting every idle pipeline frees only ${formatBytes(freed)}`,
        );
      }
      const moved = await this.#evict(evictions, `to make room for ${id}`, trigger, "make_room");
      if (moved.length > 0) await this.#releases.settled(moved);
      if (moved.length === evictions.length) return "gpu";
      room = this.#state(this.#device.read("fresh"), "every pipeline");
    }
  }

  /**
   * After an out-of-memory failure on `id` (a load or a run): evicts one more idle
   * pipeline and answers "gpu" to retry, or, past {@link MAX_OOM_RETRIES} or with nothing
   * left to evict, falls back per configuration.
   */
  async #afterOom(id: string, attempt: number, error: PipelineError): Promise<SessionDevice> {
    this.#emit(outOfMemory(id, attempt, error));
    if (attempt > MAX_OOM_RETRIES) {
      return await this.#noRoom(id, `${id} ran out of GPU memory ${attempt} times`);
    }
    const state = this.#state(this.#device.read("fresh"), "every pipeline");
    const more = chooseEvictions(state, 1, new Set([id]));
    if (more.length === 0) {
      return await this.#noRoom(
        id,
        `${id} ran out of GPU memory and no idle pipeline is left to evict`,
      );
    }
    const moved = await this.#evict(more, `after an out-of-memory error on ${id}`, "oom", "oom");
    await this.#releases.settled(moved);
    return "gpu";
  }

  /**
   * Restores the headroom when something else took VRAM (another process, a growing
   * pipeline): evicts idle pipelines, least recently used first, for the deficit only;
   * answers how many moved. Releases the driver has not shown yet count as free; on a
   * lost device or a driver error nothing is evicted.
   */
  enforceHeadroom(): Promise<number> {
    return this.#decisions.run(() => this.#restoreHeadroom());
  }

  async #restoreHeadroom(): Promise<number> {
    const reading = this.#device.read("sampled");
    if (reading.state !== "ok") return 0;
    const state = this.#state(reading, "every pipeline");
    const deficit = -availableBytes(state, gpuBytesOf(state));
    if (deficit <= 0) return 0;
    const evictions = chooseEvictions(state, deficit, new Set());
    const moved = await this.#evict(
      evictions,
      `to restore the headroom (free ${
        formatBytes(Math.min(state.deviceFreeBytes, state.budgetBytes))
      }, keeping ${formatBytes(state.headroomBytes)})`,
      "headroom",
      "headroom",
    );
    return moved.length;
  }

  /**
   * Moves each candidate to the CPU, logging why (an `eviction` event); answers the ids
   * that moved. A candidate that became active or pinned, or left the GPU, while an
   * earlier one moved, stays.
   */
  async #evict(
    candidates: EvictionCandidate[],
    reason: string,
    trigger: string,
    reasonCode: EvictionReason,
  ): Promise<string[]> {
    const moved: string[] = [];
    for (const candidate of candidates) {
      const record = this.#record(candidate.id);
      if (record.activeCount > 0 || record.pinned) continue; // busy or pinned meanwhile
      if (this.#host.view(candidate.id)?.placement !== "gpu") continue;
      let tracking: ReleaseTracking;
      try {
        tracking = await this.#offload(candidate.id, reason, trigger, { log: false });
      } catch (error) {
        if (error instanceof PipelineError && error.code === "not_loaded") continue;
        throw error;
      }
      moved.push(candidate.id);
      this.#emit(evicted(candidate, reason, reasonCode, trigger));
      // The driver cannot show this release: its bytes count as freed (Releases), so a
      // later pass does not evict another pipeline for the same shortfall. Say so.
      if (tracking === "unshown") this.#emit(releaseUnshown(candidate.id, candidate.bytes));
    }
    return moved;
  }

  // --- moves on the host (each inside a decision, each logged) ---------------------------------

  /** Loads `id` on `device` through the host; a failure other than memory or WebGPU is logged. */
  async #load(id: string, device: SessionDevice): Promise<void> {
    try {
      await this.#host.load(id, device);
      if (device === "gpu") {
        this.#record(id).leak = null; // a fresh session
        this.#releases.forget(id); // its bytes are in use again
      }
    } catch (error) {
      if (
        !(error instanceof PipelineError && (error.code === "oom" || error.code === "no_webgpu"))
      ) {
        this.#emit(loadFailed(id, device, error as Error));
      }
      throw error;
    }
  }

  /**
   * GPU → CPU, counting the released bytes until the driver shows them and flagging a
   * leak when the worker still tracks GPU bytes. `log: false` when the caller logs the
   * move its own way (an eviction); an explicit request is logged by the host's transition.
   */
  async #offload(
    id: string,
    reason: string,
    trigger: string,
    options: { log: boolean } = { log: true },
  ): Promise<ReleaseTracking> {
    const record = this.#record(id);
    const before = this.#device.read("fresh");
    const transition = await this.#host.offload(id);
    if (transition.kind !== "none") {
      if (transition.trackedAfterBytes) {
        const event = trackedLeak(id, "offload", transition.trackedAfterBytes);
        record.leak = event.reason;
        this.#emit(event);
      } else record.leak = null;
    }
    const tracking = this.#releases.track(record, transition.releasedBytes, before);
    if (options.log && transition.kind !== "none" && reason !== "requested") {
      this.#emit(movedToCpu(id, reason, transition.releasedBytes, trigger));
    }
    return tracking;
  }

  /** Releases the session and ends the worker, counting the released bytes until the driver shows them. */
  async #unload(id: string, reason: string, trigger: string): Promise<void> {
    const record = this.#record(id);
    const before = this.#device.read("fresh");
    const transition = await this.#host.unload(id);
    if (transition.kind !== "none") record.leak = null; // the worker is gone
    this.#keepAlives.cancel(record); // nothing left to expire
    this.#releases.track(record, transition.releasedBytes, before);
    record.cpuReason = null;
    if (transition.kind !== "none" && reason !== "requested") {
      this.#emit(unloaded(id, reason, transition.releasedBytes, trigger));
    }
  }

  /** Serves `id` on the CPU (moving or loading it there), recording and logging why. */
  async #toCpu(id: string, why: string, trigger = "policy"): Promise<SessionDevice> {
    const view = this.#view(id);
    if (view.placement === "gpu") await this.#offload(id, why, "policy");
    else if (view.placement !== "cpu") await this.#load(id, "cpu");
    const record = this.#record(id);
    // News once: when it moved or the reason changed, not for every request that asks
    // while it already serves there for that reason (a burst of 16 logged 16 lines).
    const news = view.placement !== "cpu" || record.cpuReason !== why;
    record.cpuReason = why;
    if (news) this.#emit(servesOnCpu(id, why, trigger));
    return "cpu";
  }

  /** No room on the GPU for `id`: serve on the CPU, or refuse (oom), as configured. */
  async #noRoom(id: string, why: string): Promise<SessionDevice> {
    if (this.#onInsufficientVram === "reject") {
      this.#emit(refusedGpu(id, why));
      throw new PipelineError(
        "oom",
        `Not enough GPU memory: ${why}. Free VRAM, or set HEADROOM_ON_INSUFFICIENT_VRAM=cpu.`,
      );
    }
    return await this.#toCpu(id, why);
  }

  /** After a GPU load: did the driver's free figure fall by at least half the bytes tracked? */
  #noteLoadSeen(record: PipelineRecord, before: GpuReading): void {
    const bytes = this.#host.view(record.id)?.gpuBytes ?? 0;
    if (!before.confirmsReleases || before.state !== "ok" || bytes < RELEASE_CHECK_MIN_BYTES) {
      return;
    }
    const after = this.#device.read("fresh");
    if (after.state !== "ok") return;
    record.driverSeesLoads = before.freeBytes - after.freeBytes >= bytes / 2;
  }

  // --- explicit actions (the API) ---------------------------------------------------------------

  /**
   * Throws not_offered (409) when `action` is not among the actions `id`'s row offers now
   * ({@link modelActions}, the rule the dashboard's buttons show), naming the state: an
   * explicit action a row does not offer is refused, never a silent no-op. Every explicit
   * action route asks this first.
   */
  requireOffered(id: string, action: ModelAction): void {
    const row = this.model(id);
    if (row.actions.includes(action)) return;
    const where = action === "pin" || action === "unpin"
      ? (row.pinned ? "pinned already" : "not pinned")
      : row.placement === "gpu"
      ? `on the GPU (state "${row.state}")`
      : row.placement === "cpu"
      ? `on the CPU (state "${row.state}"${row.gpuMismatch ? `; ${MISMATCH_REASON}` : ""})`
      : `not loaded (state "${row.state}")`;
    throw new PipelineError(
      "not_offered",
      `Model "${id}" is ${where}: "${action}" is not offered now; it offers ${
        row.actions.join(", ")
      }`,
    );
  }

  /** Loads `id` on `device` (the GPU through the policy). */
  async load(id: string, device: SessionDevice = this.defaultDevice): Promise<ModelRow> {
    this.#record(id);
    await this.#decisions.run(() => this.#place(id, device, "api"));
    return this.model(id);
  }

  /** CPU → GPU through the policy. */
  rehydrate(id: string): Promise<ModelRow> {
    return this.load(id, "gpu");
  }

  /** GPU → CPU; answers once the driver shows the memory back (or says it did not). */
  async offload(id: string): Promise<{ model: ModelRow; release: ReleaseOutcome }> {
    this.#record(id);
    const startedAt = this.#clock.now();
    let bytes = 0;
    await this.#decisions.run(async () => {
      const view = this.#view(id);
      if (view.placement === "cpu") return;
      if (view.placement !== "gpu") {
        throw new PipelineError(
          "not_loaded",
          `Pipeline "${id}" is ${view.state}, not on the GPU: nothing to offload`,
        );
      }
      bytes = view.gpuBytes;
      await this.#offload(id, "requested", "api");
      this.#keepAlives.arm(this.#record(id)); // idleAction unload: the countdown goes on there
    });
    const release = await this.#releases.outcome(id, startedAt, bytes);
    return { model: this.model(id), release };
  }

  /** Releases the session and ends the worker; answers once the driver shows the memory back. */
  async unload(id: string): Promise<{ model: ModelRow; release: ReleaseOutcome }> {
    const record = this.#record(id);
    if (record.holds > 0) {
      throw new PipelineError(
        "busy",
        `Pipeline "${id}" has ${record.holds} open stream(s); close them before unloading it`,
      );
    }
    const startedAt = this.#clock.now();
    let bytes = 0;
    await this.#decisions.run(async () => {
      bytes = this.#view(id).gpuBytes;
      await this.#unload(id, "requested", "api");
    });
    const release = await this.#releases.outcome(id, startedAt, bytes);
    return { model: this.model(id), release };
  }

  /** Pins or unpins: a pinned pipeline is never evicted. */
  pin(id: string, pinned: boolean): ModelRow {
    const record = this.#record(id);
    record.pinned = pinned;
    if (pinned) this.#keepAlives.cancel(record);
    else this.#keepAlives.arm(record);
    this.#emit(pinChanged(id, pinned));
    return this.model(id);
  }

  /** Places a chain's members on the GPU when the pre-flight says it fits (one decision). */
  placeChain(ids: string[]): Promise<{ check: FitResult; placements: ChainPlacements }> {
    return this.#decisions.run(async () => {
      const check = this.check(ids);
      if (check.fits) { for (const id of ids) await this.#place(id, "gpu", "chain"); }
      const placements: ChainPlacements = {};
      for (const id of ids) placements[id] = this.#view(id).placement;
      return { check, placements };
    });
  }

  // --- exclusive sections: switch and test load (sections.ts) ----------------------------------

  /** The exclusive section running now, or null. */
  get section(): string | null {
    return this.#gate.label;
  }

  /** True while a test load runs or waits to run. */
  get testLoadRunning(): boolean {
    return this.#gate.label === "test load";
  }

  /**
   * Switches to `id` (or a group): pre-flight first, then unload the others, load it, and
   * measure it alone. Unloads nothing when it cannot fit in reject mode; puts the previous
   * models back when it fails to load; answers at once when it is loaded alone already.
   */
  switchTo(
    id: string | string[],
    options: { trigger?: string; signal?: AbortSignal; force?: boolean } = {},
  ): Promise<SwitchResult> {
    const ids = Array.isArray(id) ? id : [id];
    for (const one of ids) this.#record(one);
    return this.#switch(ids, {
      trigger: options.trigger ?? "api",
      auto: false,
      signal: options.signal,
      force: options.force,
    });
  }

  /** A switch in its own section; `claim` (an auto-switch's request) runs before the gate opens. */
  #switch(
    ids: string[],
    options: {
      trigger: string;
      auto: boolean;
      signal?: AbortSignal;
      claim?: () => void;
      force?: boolean;
    },
  ): Promise<SwitchResult> {
    const label = `${options.auto ? "auto-switch" : "switch"} to ${ids.join(", ")}`;
    return this.#gate.run(label, () => switchLocked(this.#sectionOps, ids, options), {
      signal: options.signal,
      claim: options.claim,
    });
  }

  /**
   * Test load: each model alone (every other model unloaded first), measured, then
   * unloaded, with progress through `onEvent`. One exclusive section for the whole run.
   * Throws busy when one already runs.
   */
  testLoad(
    ids: string[],
    device: SessionDevice,
    onEvent: (event: TestLoadEvent) => void | Promise<void>,
  ): Promise<{ failed: number }> {
    for (const id of ids) this.#record(id);
    if (this.testLoadRunning) {
      throw new PipelineError("busy", "A test load is already running; wait for it to finish", 10);
    }
    return this.#gate.run(
      "test load",
      () => testLoadLocked(this.#sectionOps, ids, device, onEvent),
    );
  }

  // --- keep-alive ---------------------------------------------------------------------------

  /** Keep-alive ran out for `record` (inside a decision): offloads or unloads it, logging why. */
  async #expireIdle(
    record: PipelineRecord,
    action: KeepAlive["idleAction"],
    idleMs: number,
    ms: number,
  ): Promise<void> {
    if (!this.#keepAlives.due(record)) return;
    const id = record.id;
    const reason = `idle ${Math.round(idleMs / 1000)} s, past its keep-alive of ${
      Math.round(ms / 1000)
    } s`;
    if (action === "unload") await this.#unload(id, reason, "keep-alive");
    else if (this.#view(id).placement === "gpu") {
      await this.#offload(id, reason, "keep-alive", { log: false });
    }
    this.#emit(keepAliveExpired(id, action, reason, idleMs));
    record.keepAliveDeadline = null;
  }

  // --- start and stop -------------------------------------------------------------------------

  /** Loads every model marked `preload` (on the default device, through the policy). */
  async preload(ids: string[]): Promise<void> {
    for (const id of ids) {
      await this.load(id).catch((error) => this.#emit(preloadFailed(id, error as Error)));
    }
  }

  /** Stops timers and gives up on releases in flight. */
  close(): void {
    this.#line.close();
    this.#keepAlives.close();
    for (const record of this.#records.values()) this.#keepAlives.cancel(record);
    this.#releases.close();
  }

  /** Waits until no decision is queued or running (tests, shutdown). */
  settled(): Promise<void> {
    return this.#decisions.idle();
  }

  // --- records and the budget's view ----------------------------------------------------------

  /** The record of `id` (made for a pipeline the host took on after start); unknown_model otherwise. */
  #record(id: string): PipelineRecord {
    let record = this.#records.get(id);
    if (!record && this.#host.view(id)) {
      record = newRecord(id, this.#defaultPriority(id)); // a pipeline the host took on after start
      this.#records.set(id, record);
    }
    if (!record) {
      throw new PipelineError(
        "unknown_model",
        `Unknown model "${id}": expected one of ${this.#host.ids().join(", ")}`,
      );
    }
    return record;
  }

  /** The host's view of `id`; unknown_model for an id neither knows. */
  #view(id: string): HostView {
    const view = this.#host.view(id);
    if (!view) this.#record(id); // throws unknown_model
    return view!;
  }

  /** What the estimate rule knows of `id` (budget.ts `footprintOf`). */
  #footprint(id: string): ModelFootprint {
    return footprintOf(
      id,
      this.#host.view(id),
      this.#sizes.fileBytes(id),
      this.#sizes.measuredPeakBytes(id),
    );
  }

  /**
   * The GPU as the budget sees it for `reading`: the driver's free bytes corrected for our
   * changes since the reading and for releases it does not show yet; with every pipeline on
   * the GPU listed, or none (the caller adds the members it looks at).
   */
  #state(reading: GpuReading, listed: "every pipeline" | "members only"): GpuState {
    const pipelines: PlacedPipeline[] = [];
    if (listed === "every pipeline") {
      for (const record of this.#records.values()) {
        const view = this.#host.view(record.id);
        if (!view || view.placement !== "gpu") continue;
        pipelines.push(placed(record, view));
      }
    }
    // Our own changes since the reading (its tracked bytes are ours when it was taken), and
    // releases the driver does not show yet in a reading taken after them.
    const drift = this.#host.trackedBytes() - reading.trackedBytes;
    return {
      available: usable(reading),
      deviceFreeBytes: Math.max(
        0,
        reading.freeBytes - drift + this.#releases.unshownBytes(reading),
      ),
      budgetBytes: this.#budgetFor(reading.totalBytes),
      headroomBytes: this.#headroomBytes,
      now: this.#clock.now(),
      pipelines,
    };
  }
}

/**
 * The actions `model` allows, in the order the dashboard shows them (sent in every row, so
 * the page keeps no copy of the rule). `gpu`: a GPU is there (a lost one too: it may come
 * back, and a load then says why it cannot). Unloaded: load on the GPU or the CPU. On the
 * CPU: to the GPU, unless the parity verdict found the outputs disagree. On the GPU:
 * offload. Loaded: unload. Always: pin or unpin.
 *
 * @example
 * ```ts
 * modelActions({ placement: "cpu", pinned: false, gpuMismatch: null }, { gpu: true });
 * // ["load-gpu", "unload", "pin"]
 * ```
 */
export function modelActions(
  model: Pick<HostReport, "placement" | "gpuMismatch"> & { pinned: boolean },
  { gpu }: { gpu: boolean },
): ModelAction[] {
  const actions: ModelAction[] = [];
  if (model.placement === "none") {
    if (gpu) actions.push("load-gpu");
    actions.push("load-cpu");
  }
  if (model.placement === "cpu" && gpu && !model.gpuMismatch) actions.push("load-gpu");
  if (model.placement === "gpu") actions.push("offload");
  if (model.placement !== "none") actions.push("unload");
  actions.push(model.pinned ? "unpin" : "pin");
  return actions;
}

/** True when a reading says a GPU can take pipelines (a device is there and not lost). */
function usable(reading: GpuReading): boolean {
  return reading.state === "ok" || reading.state === "error";
}

/** A pipeline as the budget sees it: the host's placement and bytes, the record's use and pin. */
function placed(record: PipelineRecord, view: HostView): PlacedPipeline {
  return {
    id: record.id,
    placement: view.placement,
    gpuBytes: view.gpuBytes,
    lastUsedAt: record.lastUsedAt,
    activeCount: record.activeCount,
    pinned: record.pinned,
    priority: record.priority,
  };
}

/** A record of a pipeline nothing has touched yet, at its model's default priority. */
function newRecord(id: string, priority: Priority): PipelineRecord {
  return {
    id,
    activeCount: 0,
    holds: 0,
    waiting: 0,
    lastUsedAt: 0,
    pinned: false,
    priority,
    leak: null,
    cpuReason: null,
    driverSeesLoads: null,
    keepAliveTimer: null,
    keepAliveDeadline: null,
  };
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
