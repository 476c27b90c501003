/**
 * The Scheduler: the only owner of placement (ollama's `server/sched.go` idea: one record
 * per pipeline, one place that loads or evicts). It keeps one record per pipeline
 * (activity, last use, pin, keep-alive, leak) and is the only path that moves one:
 * requests and their auto-load, explicit load/offload/rehydrate/unload/pin, switches and
 * test loads (exclusive sections), chains, streams, headroom enforcement, keep-alive.
 *
 * Policy: keep free VRAM above the headroom by moving idle GPU pipelines to the CPU,
 * least recently used first and only the shortfall; count released bytes until the
 * driver shows them (no second eviction for the same shortfall); bring a pipeline to the
 * GPU on demand with out-of-memory retry (evict one more, at most 3 times, then the CPU
 * or a refusal). Active and pinned pipelines are never evicted. Every decision runs in
 * one serial queue and is logged as a structured event with its reason.
 * @module
 */
import type { EventLog } from "../events.ts";
import type {
  EvictionReason,
  HeadroomEvent,
  ModelReport,
  ModelRow,
  OffloaderStatus,
  PipelineReport,
} from "../types.ts";
import { PipelineError } from "../pipelines/errors.ts";
import { QueueAbortedError, SerialQueue } from "../serial_queue.ts";
import { type Clock, systemClock, type TimerHandle } from "../clock.ts";
import { formatBytes } from "../units.ts";
import type { RunInput, SessionDevice } from "../pipelines/protocol.ts";
import {
  canFitChain,
  chooseEvictions,
  estimateModelVram,
  type EvictionCandidate,
  type FitResult,
  type GpuState,
  type ModelFootprint,
  type PlacedPipeline,
} from "./budget.ts";
import type { HostRunResult, HostView, PipelineHost } from "./host.ts";
import type { LoadMeasurement, SwitchResult, TestLoadEvent } from "./measurements.ts";
import { type SectionOps, switchLocked, testLoadLocked } from "./sections.ts";
import { type KeepAlive, KeepAliveTimers } from "./keep_alive.ts";
import { modelActions } from "./actions.ts";

export type { KeepAlive };

export type { LoadMeasurement, SwitchResult, TestLoadEvent };
import {
  DEFAULT_RELEASE_WAIT_MS,
  RELEASE_CHECK_MIN_BYTES,
  type ReleaseOutcome,
  ReleaseTracker,
} from "./releases.ts";
import type { DeviceReading, DeviceView, Meter } from "./device.ts";

/** Most out-of-memory retries (each after evicting one more idle pipeline). */
export const MAX_OOM_RETRIES = 3;

/** Default time a request may take, queue included, before it answers 504. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 120_000;

/** How the scheduler is set up. */
export interface SchedulerOptions {
  host: PipelineHost;
  device: DeviceView;
  events: EventLog;
  /** Headroom's allowance in bytes for a device total (a fixed budget, a share, or the total). */
  budgetFor: (totalBytes: number) => number;
  /** Free VRAM to keep, exactly as configured. */
  headroomBytes: number;
  /** What a model's file weighs and what was measured of it. */
  footprint: (id: string) => ModelFootprint;
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
  meter?: Meter;
  clock?: Clock;
}

/** One pipeline's record: everything about it that is not the worker's. */
interface PipelineRecord {
  id: string;
  /** Requests running plus open streams: an active pipeline is never evicted. */
  activeCount: number;
  /** Open streams (markActive without a request). */
  holds: number;
  /** Requests admitted but not running yet. */
  waiting: number;
  lastUsedAt: number;
  pinned: boolean;
  leak: string | null;
  cpuReason: string | null;
  /**
   * Whether the driver showed this pipeline's last GPU load in its free figure (null:
   * unknown, a load too small to tell). A driver that never saw the bytes arrive (a
   * software adapter beside an NVML device) cannot show them leave: its releases are not
   * waited for.
   */
  driverSeesLoads: boolean | null;
  keepAliveTimer: TimerHandle | null;
  keepAliveDeadline: number | null;
}

/** A request's options. */
export interface RunOptions {
  /** What asked (a route: "infer", "ocr", "stream", "chat"), for events. */
  trigger?: string;
  /** The client's signal: a disconnect removes the request from its queue. */
  signal?: AbortSignal;
  /** Models that travel together (OCR's det, cls, rec): in exclusive mode they are switched to as one. */
  group?: string[];
}

/** A gate that holds new requests while an exclusive section runs. */
interface Section {
  label: string;
  done: Promise<void>;
}

/** The placement owner. */
export class Scheduler {
  readonly #o: SchedulerOptions;
  readonly #host: PipelineHost;
  readonly #clock: Clock;
  readonly #records = new Map<string, PipelineRecord>();
  readonly #decisions = new SerialQueue();
  readonly #releases = new ReleaseTracker();
  readonly #keepAlives: KeepAliveTimers;
  #section: Section | null = null;
  #running = 0;
  #drainWaiters: Array<() => void> = [];
  #closed = false;
  /** Each model's last measured switch, for a switch to a model already loaded alone. */
  readonly #lastSwitch = new Map<string, SwitchResult>();

  constructor(options: SchedulerOptions) {
    this.#o = options;
    this.#host = options.host;
    this.#clock = options.clock ?? systemClock;
    for (const id of options.host.ids()) this.#records.set(id, newRecord(id));
    this.#keepAlives = new KeepAliveTimers({
      clock: this.#clock,
      policy: (id) => options.keepAlive?.(id) ?? { ms: null, idleAction: "offload" },
      view: (id) => this.#host.view(id),
      decide: (op) => this.#decisions.run(op),
      expire: (id, action, idleMs, ms) => this.#expire(id, action, idleMs, ms),
    });
  }

  /** shared or exclusive. */
  get mode(): "shared" | "exclusive" {
    return this.#o.mode ?? "shared";
  }

  /** Where pipelines load when nothing says otherwise. */
  get defaultDevice(): SessionDevice {
    return this.#host.defaultDevice;
  }

  /** The headroom in force (exactly as configured). */
  get headroomBytes(): number {
    return this.#o.headroomBytes;
  }

  /** True when a GPU can take pipelines now (a device is there and not lost). */
  gpuUsable(): boolean {
    const state = this.#read(false).state;
    return state === "ok" || state === "error";
  }

  // --- records --------------------------------------------------------------------------

  #record(id: string): PipelineRecord {
    let record = this.#records.get(id);
    if (!record && this.#host.view(id)) {
      record = newRecord(id); // a pipeline the host took on after start
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

  #view(id: string): HostView {
    const view = this.#host.view(id);
    if (!view) this.#record(id); // throws unknown_model
    return view!;
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

  // --- reading the device -----------------------------------------------------------------

  /**
   * A reading of the device: the monitor's latest sample (what started a headroom pass,
   * and what check() reads), or a fresh driver read before a move.
   */
  #read(fresh: boolean): DeviceReading {
    return this.#o.device.read(fresh);
  }

  /** Free bytes as the policy counts them: the driver's, corrected for our changes since, plus releases not shown yet. */
  #freeBytes(reading: DeviceReading): number {
    // Our own changes since the reading (its tracked bytes are ours when it was taken), and
    // releases the driver does not show yet in a reading taken after them.
    const drift = this.#host.trackedBytes() - reading.trackedBytes;
    return Math.max(0, reading.freeBytes - drift + this.#releases.unshownBytes(reading));
  }

  /** The GPU as the budget sees it: only the pipelines on the GPU when `all` is false. */
  #state(reading: DeviceReading, all: boolean): GpuState {
    const budgetBytes = this.#o.budgetFor(reading.totalBytes);
    const pipelines: PlacedPipeline[] = [];
    if (all) {
      for (const record of this.#records.values()) {
        const view = this.#host.view(record.id);
        if (!view || view.placement !== "gpu") continue;
        pipelines.push(placed(record, view));
      }
    }
    return {
      available: reading.state === "ok" || reading.state === "error",
      deviceFreeBytes: this.#freeBytes(reading),
      budgetBytes,
      headroomBytes: this.#o.headroomBytes,
      now: this.#clock.now(),
      pipelines,
    };
  }

  /**
   * The pre-flight check for a chain, changing nothing. When the chain fits without
   * evictions it costs the same at 10 or 10,000 pipelines: only the members are looked at.
   */
  check(ids: string[]): FitResult {
    for (const id of ids) this.#record(id);
    const reading = this.#read(false);
    const footprints = ids.map((id) => this.#o.footprint(id));
    const small = this.#state(reading, false);
    // The members on the GPU, and everything else ours as one unmovable block.
    let membersOnGpu = 0;
    const seen = new Set<string>();
    for (const id of ids) {
      const view = this.#host.view(id)!;
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
      });
    }
    const quick = canFitChain(footprints, small);
    if (quick.fits || !small.available) return quick;
    return canFitChain(footprints, this.#state(reading, true));
  }

  /** The policy's figures, for the API. */
  status(): OffloaderStatus {
    const reading = this.#read(false);
    const state = this.#state(reading, false);
    const ours = this.#host.trackedBytes();
    const available = Math.min(state.deviceFreeBytes, state.budgetBytes - ours) -
      state.headroomBytes;
    const pipelines: OffloaderStatus["pipelines"] = [];
    for (const record of this.#records.values()) {
      pipelines.push({
        id: record.id,
        activeCount: record.activeCount,
        pinned: record.pinned,
        lastUsedAt: record.lastUsedAt,
        idleMs: record.lastUsedAt ? Math.max(0, state.now - record.lastUsedAt) : 0,
        keepAliveDeadline: record.keepAliveDeadline,
        idleAction: this.#keepAlives.policy(record.id).idleAction,
      });
    }
    return {
      budgetBytes: state.budgetBytes,
      headroomBytes: state.headroomBytes,
      availableBytes: available,
      onInsufficientVram: this.#o.onInsufficientVram,
      mode: this.mode,
      releasingBytes: this.#releases.releasingBytes,
      section: this.#section?.label ?? null,
      pipelines,
    };
  }

  /**
   * One model for the API: the host's figures with the record's pin, last use, leak,
   * keep-alive and activity, and the actions it allows now.
   */
  model(id: string): ModelRow {
    return this.#row(id, this.#read(false).state !== "none", this.#clock.now());
  }

  /** Every model, in catalog order. */
  list(): ModelRow[] {
    const gpu = this.#read(false).state !== "none";
    const now = this.#clock.now();
    return this.#host.ids().map((id) => this.#row(id, gpu, now));
  }

  #row(id: string, gpu: boolean, now: number): ModelRow {
    const record = this.#record(id);
    const report = this.#host.report(id);
    const model: ModelReport = {
      ...report,
      pinned: record.pinned,
      lastUsedAt: record.lastUsedAt || null,
      leak: record.leak ?? report.leak,
      keepAliveDeadline: record.keepAliveDeadline,
      cpuReason: report.placement === "cpu" ? record.cpuReason : null,
    };
    return {
      ...model,
      activeCount: record.activeCount,
      idleMs: record.lastUsedAt ? Math.max(0, now - record.lastUsedAt) : 0,
      idleAction: this.#keepAlives.policy(id).idleAction,
      actions: modelActions(model, gpu),
      takenAt: now,
    };
  }

  /** The per-pipeline breakdown of the VRAM report. */
  placements(): PipelineReport[] {
    return this.#host.ids().map((id) => {
      const view = this.#host.view(id)!;
      const record = this.#record(id);
      const report = this.#host.report(id);
      return {
        id,
        state: view.state,
        placement: view.placement,
        gpuBytes: view.gpuBytes,
        gpuBuffers: report.gpuBuffers,
        error: report.error,
        pinned: record.pinned,
        leak: record.leak ?? report.leak,
        gpuMismatch: view.gpuMismatch,
        engine: report.engine,
        ramBytes: report.ramBytes,
      };
    });
  }

  // --- events -------------------------------------------------------------------------------

  #emit(event: Omit<HeadroomEvent, "seq" | "at">): void {
    this.#o.events.emit(event);
  }

  // --- the request path -----------------------------------------------------------------

  /**
   * Runs a request on `id`, placed by the policy: it waits while an exclusive section
   * runs (bounded by the queue limit), switches first in exclusive mode, is marked active
   * while it runs, goes to the GPU when it can (making room first), else the CPU or a
   * refusal. A client that disconnects leaves its queue; past the request timeout it
   * answers 504 and a stuck worker is replaced.
   */
  async run(id: string, input: RunInput, options: RunOptions = {}): Promise<HostRunResult> {
    const record = this.#record(id);
    const limit = this.#o.queueLimit;
    const queued = record.waiting + record.activeCount - record.holds;
    if (limit !== undefined && queued >= limit) {
      throw new PipelineError(
        "queue_full",
        `Pipeline "${id}" has ${queued} requests waiting or running (limit ${limit}); retry shortly`,
        this.#section ? 2 : 1,
      );
    }
    const deadline = new AbortController();
    const timeoutMs = this.#o.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    const timer = this.#clock.setTimeout(
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
        record.lastUsedAt = this.#clock.now();
        this.#running--;
        this.#keepAlives.arm(record);
        if (this.#running === 0) { for (const wake of this.#drainWaiters.splice(0)) wake(); }
      }
    } catch (error) {
      throw asRequestError(error, signal, id);
    } finally {
      this.#clock.clearTimeout(timer);
    }
  }

  /** Waits for the gate, switches in exclusive mode, then counts the request as running. */
  async #admit(record: PipelineRecord, options: RunOptions, signal: AbortSignal): Promise<void> {
    for (;;) {
      signal.throwIfAborted();
      if (this.#section) {
        await abortable(this.#section.done, signal);
        continue;
      }
      const group = options.group ?? [record.id];
      if (this.mode === "exclusive" && !this.#groupLoaded(group)) {
        await this.#switch(group, {
          trigger: options.trigger ?? "request",
          auto: true,
          signal,
          claim: () => this.#claim(record),
        });
        return;
      }
      this.#claim(record);
      return;
    }
  }

  #claim(record: PipelineRecord): void {
    record.waiting--;
    record.activeCount++;
    record.lastUsedAt = this.#clock.now();
    this.#running++;
    this.#keepAlives.cancel(record);
  }

  #groupLoaded(group: string[]): boolean {
    for (const id of group) if (this.#view(id).placement === "none") return false;
    return true;
  }

  async #runAdmitted(
    record: PipelineRecord,
    input: RunInput,
    signal: AbortSignal,
    deadline: AbortSignal,
  ): Promise<HostRunResult> {
    const id = record.id;
    let device = await this.#ensurePlaced(id, signal);
    let reloads = 0;
    for (let attempt = 1;; attempt++) {
      try {
        return await this.#host.run(id, input, { signal, deadline });
      } catch (error) {
        if (error instanceof PipelineError && error.code === "not_loaded" && reloads++ < 3) {
          // Unloaded between its placement and its turn (an explicit unload): place again.
          device = await this.#ensurePlaced(id, signal);
          attempt--;
          continue;
        }
        if (!(error instanceof PipelineError && error.code === "oom") || device === "cpu") {
          throw error;
        }
        device = await this.#decisions.run(() => this.#afterOom(id, attempt, error), signal);
      }
    }
  }

  /** Brings `id` to the GPU if the policy allows (else the CPU); answers where it is. */
  place(id: string): Promise<SessionDevice> {
    try {
      return this.#ensurePlaced(id);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  #ensurePlaced(id: string, signal?: AbortSignal): Promise<SessionDevice> {
    const view = this.#view(id);
    // Already on the GPU: no decision to make (an active pipeline is never evicted).
    if (view.placement === "gpu") return Promise.resolve("gpu");
    return this.#decisions.run(() => this.#placeLocked(id, "gpu", "request"), signal);
  }

  // --- decisions (run inside the serial queue) ------------------------------------------

  /** Brings `id` to `want`, making room on the GPU first; falls back or refuses per configuration. */
  async #placeLocked(id: string, want: SessionDevice, trigger: string): Promise<SessionDevice> {
    const record = this.#record(id);
    const view = this.#view(id);
    if (want === "cpu") {
      if (view.placement === "gpu") await this.#offloadLocked(id, "requested", trigger);
      else if (view.placement !== "cpu") await this.#loadHost(id, "cpu");
      record.cpuReason = null;
      return "cpu";
    }
    if (view.placement === "gpu") return "gpu";
    const reading = this.#read(true);
    if (reading.state === "none") {
      return await this.#toCpu(id, view, "no GPU is usable", trigger);
    }
    if (reading.state === "lost") {
      const why = `the GPU is lost (${reading.error ?? "driver error"})`;
      if (this.#o.onInsufficientVram === "reject") {
        throw new PipelineError(
          "gpu_lost",
          `${id} cannot go to the GPU: ${why}. Retry when it recovers, or set HEADROOM_ON_INSUFFICIENT_VRAM=cpu.`,
          5,
        );
      }
      return await this.#toCpu(id, view, why, trigger);
    }
    if (view.gpuMismatch) {
      return await this.#toCpu(id, view, "its GPU and CPU outputs disagree", trigger);
    }
    const estimate = estimateModelVram(this.#o.footprint(id));
    const exclude = new Set([id]);
    let room = this.#state(reading, true);
    for (;;) {
      const available = Math.min(room.deviceFreeBytes, room.budgetBytes - ours(room)) -
        room.headroomBytes;
      const shortfall = estimate.bytes - available;
      // On a driver error the figures are old: evict nothing on them.
      const evictions = reading.state === "error" ? [] : chooseEvictions(room, shortfall, exclude);
      const freed = evictions.reduce((sum, e) => sum + e.bytes, 0);
      if (shortfall > 0 && freed < shortfall) {
        return await this.#insufficient(
          id,
          `${id} needs ${formatBytes(estimate.bytes)} (${estimate.basis} estimate); ${
            formatBytes(Math.max(0, available))
          } free above the ${
            formatBytes(room.headroomBytes)
          } headroom, and evicting every idle pipeline frees only ${formatBytes(freed)}`,
        );
      }
      const moved = await this.#evict(evictions, `to make room for ${id}`, trigger, "make_room");
      if (moved.length > 0) await this.#awaitReleases(moved);
      if (moved.length === evictions.length) break;
      room = this.#state(this.#read(true), true);
    }
    for (let attempt = 1;; attempt++) {
      try {
        const before = this.#read(true);
        await this.#loadHost(id, "gpu");
        this.#noteLoadSeen(record, before);
        if (this.#view(id).placement !== "gpu") {
          // The host moved it to the CPU itself (its parity check failed).
          record.cpuReason = "its GPU and CPU outputs disagree";
          return "cpu";
        }
        record.lastUsedAt = this.#clock.now(); // just placed counts as just used
        record.cpuReason = null;
        this.#emit({
          kind: "placement",
          pipeline: id,
          message: `placed ${id} on the GPU (${estimate.basis} estimate ${
            formatBytes(estimate.bytes)
          })`,
          reason: "requested",
          bytes: estimate.bytes,
          trigger,
        });
        this.#keepAlives.arm(record);
        return "gpu";
      } catch (error) {
        if (error instanceof PipelineError && error.code === "no_webgpu") {
          return await this.#toCpu(
            id,
            this.#view(id),
            `the GPU could not take it (${error.message})`,
          );
        }
        if (!(error instanceof PipelineError && error.code === "oom")) throw error;
        const next = await this.#afterOom(id, attempt, error);
        if (next === "cpu") return "cpu";
      }
    }
  }

  async #loadHost(id: string, device: SessionDevice): Promise<void> {
    try {
      await this.#host.load(id, device);
    } catch (error) {
      if (
        !(error instanceof PipelineError && (error.code === "oom" || error.code === "no_webgpu"))
      ) {
        this.#emit({
          kind: "failure",
          pipeline: id,
          message: `${id}: loading on the ${device.toUpperCase()} failed: ${
            (error as Error).message
          }`,
          reason: (error as Error).message,
        });
      }
      throw error;
    }
  }

  async #toCpu(
    id: string,
    view: HostView,
    why: string,
    trigger = "policy",
  ): Promise<SessionDevice> {
    if (view.placement === "gpu") await this.#offloadLocked(id, why, "policy");
    else if (view.placement !== "cpu") await this.#loadHost(id, "cpu");
    this.#record(id).cpuReason = why;
    this.#emit({
      kind: "placement",
      pipeline: id,
      message: `${id} serves on the CPU: ${why}`,
      reason: why,
      trigger,
    });
    return "cpu";
  }

  /**
   * After an out-of-memory failure on `id`: evicts one more idle pipeline and answers
   * "gpu" to retry, or, past {@link MAX_OOM_RETRIES} or with nothing left to evict,
   * falls back per configuration.
   */
  async #afterOom(id: string, attempt: number, error: PipelineError): Promise<SessionDevice> {
    this.#emit({
      kind: "oom",
      pipeline: id,
      message: `${id}: out of GPU memory (attempt ${attempt}): ${error.message}`,
      reason: error.message,
    });
    if (attempt > MAX_OOM_RETRIES) {
      return await this.#insufficient(id, `${id} ran out of GPU memory ${attempt} times`);
    }
    const more = chooseEvictions(this.#state(this.#read(true), true), 1, new Set([id]));
    if (more.length === 0) {
      return await this.#insufficient(
        id,
        `${id} ran out of GPU memory and no idle pipeline is left to evict`,
      );
    }
    const moved = await this.#evict(more, `after an out-of-memory error on ${id}`, "oom", "oom");
    await this.#awaitReleases(moved);
    return "gpu";
  }

  /** No room: serve on the CPU, or refuse, as configured. */
  async #insufficient(id: string, why: string): Promise<SessionDevice> {
    if (this.#o.onInsufficientVram === "reject") {
      this.#emit({
        kind: "placement",
        pipeline: id,
        message: `refused ${id} on the GPU: ${why}`,
        reason: why,
      });
      throw new PipelineError(
        "oom",
        `Not enough GPU memory: ${why}. Free VRAM, or set HEADROOM_ON_INSUFFICIENT_VRAM=cpu.`,
      );
    }
    return await this.#toCpu(id, this.#view(id), why);
  }

  /**
   * Moves each candidate to the CPU, logging why; answers the ids that moved. A candidate
   * that became active or pinned, or left the GPU, while an earlier one moved, stays.
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
      try {
        await this.#offloadLocked(candidate.id, reason, trigger, false);
      } catch (error) {
        if (error instanceof PipelineError && error.code === "not_loaded") continue;
        throw error;
      }
      moved.push(candidate.id);
      this.#emit({
        kind: "eviction",
        pipeline: candidate.id,
        message: `evicted ${candidate.id} (${
          candidate.idleMs === null ? "never used" : `idle ${Math.round(candidate.idleMs / 1000)} s`
        }, ${formatBytes(candidate.bytes)}) ${reason}`,
        reason,
        reasonCode,
        bytes: candidate.bytes,
        idleMs: candidate.idleMs,
        trigger,
      });
    }
    return moved;
  }

  /** GPU → CPU, counting the released bytes until the driver shows them. */
  async #offloadLocked(id: string, reason: string, trigger: string, log = true): Promise<void> {
    const before = this.#read(true);
    const transition = await this.#host.offload(id);
    this.#trackRelease(id, transition.releasedBytes, before);
    // An explicit request is logged by the host's transition event; other reasons are news.
    if (log && transition.kind !== "none" && reason !== "requested") {
      this.#emit({
        kind: "placement",
        pipeline: id,
        message: `moved ${id} to the CPU (${reason})`,
        reason,
        bytes: transition.releasedBytes,
        trigger,
      });
    }
  }

  async #unloadLocked(id: string, reason: string, trigger: string): Promise<void> {
    const before = this.#read(true);
    const transition = await this.#host.unload(id);
    this.#trackRelease(id, transition.releasedBytes, before);
    this.#record(id).cpuReason = null;
    if (transition.kind !== "none" && reason !== "requested") {
      this.#emit({
        kind: "placement",
        pipeline: id,
        message: `unloaded ${id} (${reason})`,
        reason,
        bytes: transition.releasedBytes,
        trigger,
      });
    }
  }

  /** After a GPU load: did the driver's free figure fall by at least half the bytes tracked? */
  #noteLoadSeen(record: PipelineRecord, before: DeviceReading): void {
    const bytes = this.#host.view(record.id)?.gpuBytes ?? 0;
    if (!before.confirmsReleases || before.state !== "ok" || bytes < RELEASE_CHECK_MIN_BYTES) {
      return;
    }
    const after = this.#read(true);
    if (after.state !== "ok") return;
    record.driverSeesLoads = before.freeBytes - after.freeBytes >= bytes / 2;
  }

  #trackRelease(id: string, bytes: number, before: DeviceReading): void {
    if (!before.confirmsReleases || bytes < RELEASE_CHECK_MIN_BYTES) return;
    if (before.state !== "ok") return;
    if (this.#record(id).driverSeesLoads === false) return; // it never saw them arrive
    // Readings up to this one were taken before our tracked bytes fell: their drift already
    // counts the release. Later ones do not, until the driver shows it.
    const after = this.#read(true);
    const release = this.#releases.start(
      id,
      bytes,
      before.freeBytes,
      after.seq,
      this.#clock.now(),
      this.#o.releaseWaitMs ?? DEFAULT_RELEASE_WAIT_MS,
    );
    const poll = () => {
      if (this.#closed) return release.settle(false);
      const reading = this.#o.device.read(true);
      if (reading.state === "ok" && this.#releases.confirmIfShown(release, reading.freeBytes)) {
        this.#emit({
          kind: "release",
          pipeline: id,
          message: `${id}: the driver shows its ${formatBytes(bytes)} back after ${
            this.#clock.now() - release.startedAt
          } ms`,
          reason: "release confirmed",
          bytes,
        });
        this.#record(id).leak = null;
        return;
      }
      if (this.#clock.now() >= release.deadline) {
        const shown = Math.max(0, (reading.freeBytes ?? 0) - release.baseFreeBytes);
        const leak = `device free rose by ${shown} bytes within ${
          this.#o.releaseWaitMs ?? DEFAULT_RELEASE_WAIT_MS
        } ms of releasing ${bytes} bytes`;
        this.#record(id).leak = leak;
        release.settle(false);
        this.#emit({ kind: "leak", pipeline: id, message: `${id}: ${leak}`, reason: leak, bytes });
        return;
      }
      this.#clock.setTimeout(poll, this.#o.releasePollMs ?? 20);
    };
    poll();
  }

  /** Waits (bounded) until the releases of `ids` are confirmed or given up on. */
  async #awaitReleases(ids: string[]): Promise<void> {
    for (const id of ids) await this.#releases.get(id)?.settled;
  }

  async #releaseOutcome(id: string, startedAt: number, bytes: number): Promise<ReleaseOutcome> {
    const release = this.#releases.get(id);
    if (!release) {
      return { confirmed: true, bytes, ms: this.#clock.now() - startedAt, checked: false };
    }
    const confirmed = await release.settled;
    return { confirmed, bytes: release.bytes, ms: this.#clock.now() - startedAt, checked: true };
  }

  /**
   * Restores the headroom when something else took VRAM (another process, a growing
   * pipeline): evicts idle pipelines, least recently used first, for the deficit only.
   * Releases the driver has not shown yet count as free; on a lost device or a driver
   * error nothing is evicted.
   */
  enforceHeadroom(): Promise<number> {
    return this.#decisions.run(async () => {
      const reading = this.#read(false);
      if (reading.state !== "ok") return 0;
      const state = this.#state(reading, true);
      const deficit = -(Math.min(state.deviceFreeBytes, state.budgetBytes - ours(state)) -
        state.headroomBytes);
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
    });
  }

  // --- explicit placement ---------------------------------------------------------------

  /** Loads `id` on `device` (the GPU through the policy). */
  async load(id: string, device: SessionDevice = this.defaultDevice): Promise<ModelRow> {
    this.#record(id);
    await this.#decisions.run(() => this.#placeLocked(id, device, "api"));
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
      await this.#offloadLocked(id, "requested", "api");
    });
    const release = await this.#releaseOutcome(id, startedAt, bytes);
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
      await this.#unloadLocked(id, "requested", "api");
    });
    const release = await this.#releaseOutcome(id, startedAt, bytes);
    return { model: this.model(id), release };
  }

  /** Pins or unpins: a pinned pipeline is never evicted. */
  pin(id: string, pinned: boolean): ModelRow {
    const record = this.#record(id);
    record.pinned = pinned;
    if (pinned) this.#keepAlives.cancel(record);
    else this.#keepAlives.arm(record);
    this.#emit({
      kind: "info",
      pipeline: id,
      message: `${id} ${pinned ? "pinned" : "unpinned"}`,
      trigger: "api",
    });
    return this.model(id);
  }

  /** Places a chain's members on the GPU when the pre-flight says it fits (one decision). */
  placeChain(
    ids: string[],
  ): Promise<{ check: FitResult; placements: Record<string, "gpu" | "cpu" | "none"> }> {
    return this.#decisions.run(async () => {
      const check = this.check(ids);
      if (check.fits) { for (const id of ids) await this.#placeLocked(id, "gpu", "chain"); }
      const placements: Record<string, "gpu" | "cpu" | "none"> = {};
      for (const id of ids) placements[id] = this.#view(id).placement;
      return { check, placements };
    });
  }

  /** The stream route's last resort: moves `id` to the CPU after repeated out-of-memory errors. */
  toCpu(id: string, why: string): Promise<SessionDevice> {
    return this.#decisions.run(() => this.#toCpu(id, this.#view(id), why, "stream"));
  }

  // --- exclusive sections: switch and test load -----------------------------------------

  /** The exclusive section running now, or null. */
  get section(): string | null {
    return this.#section?.label ?? null;
  }

  /**
   * Runs `body` alone: new requests wait at the gate, running ones finish first, and no
   * other placement change runs until it ends. `claim` runs before the gate opens.
   */
  async #exclusive<T>(
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
      return await this.#decisions.run(async () => {
        const result = await body();
        options.claim?.();
        return result;
      });
    } finally {
      this.#section = null;
      open();
    }
  }

  /** True while a test load runs or waits to run. */
  get testLoadRunning(): boolean {
    return this.#section?.label === "test load";
  }

  /**
   * Switches to `id` (or a group): pre-flight first, then unload the others, load it, and
   * measure it alone. Unloads nothing when it cannot fit in reject mode; puts the previous
   * models back when it fails to load; answers at once when it is loaded alone already.
   */
  switchTo(
    id: string | string[],
    options: { trigger?: string; signal?: AbortSignal } = {},
  ): Promise<SwitchResult> {
    const ids = Array.isArray(id) ? id : [id];
    for (const one of ids) this.#record(one);
    return this.#switch(ids, {
      trigger: options.trigger ?? "api",
      auto: false,
      signal: options.signal,
    });
  }

  #switch(
    ids: string[],
    options: { trigger: string; auto: boolean; signal?: AbortSignal; claim?: () => void },
  ): Promise<SwitchResult> {
    const label = `${options.auto ? "auto-switch" : "switch"} to ${ids.join(", ")}`;
    return this.#exclusive(label, () => switchLocked(this.#sectionOps(), ids, options), {
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
    return this.#exclusive(
      "test load",
      () => testLoadLocked(this.#sectionOps(), ids, device, onEvent),
    );
  }

  /** The locked operations a section may use while it holds the scheduler. */
  #sectionOps(): SectionOps {
    return {
      host: this.#host,
      view: (id) => this.#view(id),
      holds: (id) => this.#record(id).holds,
      cpuReason: (id) => this.#record(id).cpuReason,
      defaultDevice: this.defaultDevice,
      onInsufficientVram: this.#o.onInsufficientVram,
      readFresh: () => this.#read(true),
      state: (reading) => this.#state(reading, false),
      footprint: (id) => this.#o.footprint(id),
      unload: (id, reason, trigger) => this.#unloadLocked(id, reason, trigger),
      place: (id, device, trigger) => this.#placeLocked(id, device, trigger),
      awaitReleases: (ids) => this.#awaitReleases(ids),
      meter: this.#o.meter,
      emit: (event) => this.#emit(event),
      lastSwitch: this.#lastSwitch,
    };
  }

  // --- keep-alive -----------------------------------------------------------------------

  /** Keep-alive ran out for `id`: offload or unload it, logging why (inside a decision). */
  async #expire(
    id: string,
    action: KeepAlive["idleAction"],
    idleMs: number,
    ms: number,
  ): Promise<void> {
    const reason = `idle ${Math.round(idleMs / 1000)} s, past its keep-alive of ${
      Math.round(ms / 1000)
    } s`;
    if (action === "unload") await this.#unloadLocked(id, reason, "keep-alive");
    else if (this.#view(id).placement === "gpu") {
      await this.#offloadLocked(id, reason, "keep-alive", false);
    }
    this.#emit({
      kind: "keep-alive",
      pipeline: id,
      message: `${action === "unload" ? "unloaded" : "offloaded"} ${id}: ${reason}`,
      reason,
      idleMs,
      trigger: "keep-alive",
    });
  }

  /** Loads every model marked `preload` (on the default device, through the policy). */
  async preload(ids: string[]): Promise<void> {
    for (const id of ids) {
      await this.load(id).catch((error) =>
        this.#emit({
          kind: "failure",
          pipeline: id,
          message: `preloading ${id} failed: ${(error as Error).message}`,
          reason: (error as Error).message,
          trigger: "preload",
        })
      );
    }
  }

  /** Stops timers and gives up on releases in flight. */
  close(): void {
    this.#closed = true;
    this.#keepAlives.close();
    for (const record of this.#records.values()) this.#keepAlives.cancel(record);
    this.#releases.clear();
  }

  /** Waits until no decision is queued or running (tests, shutdown). */
  settled(): Promise<void> {
    return this.#decisions.idle();
  }
}

function newRecord(id: string): PipelineRecord {
  return {
    id,
    activeCount: 0,
    holds: 0,
    waiting: 0,
    lastUsedAt: 0,
    pinned: false,
    leak: null,
    cpuReason: null,
    driverSeesLoads: null,
    keepAliveTimer: null,
    keepAliveDeadline: null,
  };
}

function placed(record: PipelineRecord, view: HostView): PlacedPipeline {
  return {
    id: record.id,
    placement: view.placement,
    gpuBytes: view.gpuBytes,
    lastUsedAt: record.lastUsedAt,
    activeCount: record.activeCount,
    pinned: record.pinned,
  };
}

function ours(state: GpuState): number {
  let sum = 0;
  for (const p of state.pipelines) if (p.placement === "gpu") sum += p.gpuBytes;
  return sum;
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
