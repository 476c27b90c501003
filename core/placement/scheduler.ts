/**
 * The Scheduler: the only owner of placement (ollama's `server/sched.go` idea: one record
 * per pipeline, one place that loads or evicts). It is the one public entry and the only
 * path that moves a pipeline: requests and their auto-load, explicit
 * load/offload/rehydrate/unload/pin, switches and test loads (exclusive sections),
 * chains, streams, headroom enforcement, keep-alive. It owns the serial queue every
 * decision runs in and composes its parts, one job each, lending them what they need:
 *
 * - `records.ts`: one record per pipeline (activity, last use, pin, keep-alive, leak).
 * - `gpu_state.ts`: device readings and the free bytes and GPU state the budget counts.
 * - `requests.ts`: request admission (queue limit, deadline, gate) and the run path.
 * - `place.ts`: placing one pipeline (to the GPU, or the CPU, or a refusal).
 * - `eviction.ts`: which pipelines leave the GPU (make room, OOM retry, headroom).
 * - `moves.ts`: the host moves a decision makes, each logged with its reason;
 *   `explicit.ts`: the API's offload and unload, answered once the release shows.
 * - `release_watch.ts`, `releases.ts`: released bytes until the driver shows them.
 * - `chain.ts`: the chain pre-flight check and chain placement.
 * - `gate.ts`, `sections.ts`: exclusive sections (switch, test load).
 * - `keep_alive.ts`: idle timers; `reports.ts`: status, models and placements.
 * - `placement_events.ts`: the events the moves log; `budget.ts`: the pure arithmetic.
 *
 * Policy: keep free VRAM above the headroom by moving idle GPU pipelines to the CPU,
 * least recently used first and only the shortfall; count released bytes until the
 * driver shows them (no second eviction for the same shortfall); bring a pipeline to the
 * GPU on demand with out-of-memory retry (evict one more, at most 3 times, then the CPU
 * or a refusal). Active and pinned pipelines are never evicted. Every decision runs in
 * one serial queue and is logged as a structured event with its reason.
 * @module
 */
import type { ModelRow, OffloaderStatus, PipelineReport } from "../types.ts";
import { PipelineError } from "../pipelines/errors.ts";
import type { RunInput, SessionDevice } from "../pipelines/protocol.ts";
import type { FitResult } from "./budget.ts";
import type { HostRunResult } from "./host.ts";
import type { LoadMeasurement, SwitchResult, TestLoadEvent } from "./measurements.ts";
import { type SectionOps, switchLocked, testLoadLocked } from "./sections.ts";
import type { KeepAlive } from "./keep_alive.ts";
import type { ReleaseOutcome } from "./releases.ts";
import type { SchedulerOptions } from "./options.ts";
import { usable } from "./gpu_state.ts";
import { MAX_OOM_RETRIES } from "./eviction.ts";
import type { ChainPlacements } from "./chain.ts";
import { DEFAULT_REQUEST_TIMEOUT_MS, type RunOptions } from "./requests.ts";
import { pinChanged, preloadFailed } from "./placement_events.ts";
import { buildParts, type SchedulerParts } from "./parts.ts";

export type {
  KeepAlive,
  LoadMeasurement,
  RunOptions,
  SchedulerOptions,
  SwitchResult,
  TestLoadEvent,
};
export { DEFAULT_REQUEST_TIMEOUT_MS, MAX_OOM_RETRIES };

/** The placement owner. */
export class Scheduler {
  readonly #o: SchedulerOptions;
  readonly #p: SchedulerParts;
  /** Each model's last measured switch, for a switch to a model already loaded alone. */
  readonly #lastSwitch = new Map<string, SwitchResult>();

  constructor(options: SchedulerOptions) {
    this.#o = options;
    this.#p = buildParts(
      options,
      (group, trigger, signal, claim) =>
        this.#switch(group, { trigger, auto: true, signal, claim }),
    );
  }

  /** shared or exclusive. */
  get mode(): "shared" | "exclusive" {
    return this.#o.mode ?? "shared";
  }

  /** Where pipelines load when nothing says otherwise. */
  get defaultDevice(): SessionDevice {
    return this.#o.host.defaultDevice;
  }

  /** The headroom in force (exactly as configured). */
  get headroomBytes(): number {
    return this.#o.headroomBytes;
  }

  /** True when a GPU can take pipelines now (a device is there and not lost). */
  gpuUsable(): boolean {
    return usable(this.#p.account.read(false));
  }

  /** Marks a stream as open on `id`: an active pipeline is never evicted. */
  markActive(id: string): void {
    const record = this.#p.records.get(id);
    record.activeCount++;
    record.holds++;
    record.lastUsedAt = this.#p.clock.now();
    this.#p.keepAlives.cancel(record);
  }

  /** Marks a stream on `id` as closed. */
  markIdle(id: string): void {
    const record = this.#p.records.get(id);
    if (record.holds > 0) {
      record.holds--;
      record.activeCount = Math.max(0, record.activeCount - 1);
    }
    record.lastUsedAt = this.#p.clock.now();
    this.#p.keepAlives.arm(record);
  }

  // --- reading (reports.ts, chain.ts) ---------------------------------------------------

  /**
   * The pre-flight check for a chain, changing nothing. When the chain fits without
   * evictions it costs the same at 10 or 10,000 pipelines: only the members are looked at.
   */
  check(ids: string[]): FitResult {
    return this.#p.chains.check(ids);
  }

  /** The policy's figures, for the API. */
  status(): OffloaderStatus {
    return this.#p.reports.status();
  }

  /** One model for the API: the host's figures with the record's pin, last use, leak and keep-alive. */
  model(id: string): ModelRow {
    return this.#p.reports.model(id);
  }

  /** Every model, in catalog order. */
  list(): ModelRow[] {
    return this.#p.reports.list();
  }

  /** The per-pipeline breakdown of the VRAM report. */
  placements(): PipelineReport[] {
    return this.#p.reports.placements();
  }

  // --- requests (requests.ts, place.ts) -------------------------------------------------

  /**
   * Runs a request on `id`, placed by the policy: it waits while an exclusive section
   * runs (bounded by the queue limit), switches first in exclusive mode, is marked active
   * while it runs, goes to the GPU when it can (making room first), else the CPU or a
   * refusal. A client that disconnects leaves its queue; past the request timeout it
   * answers 504 and a stuck worker is replaced.
   */
  run(id: string, input: RunInput, options: RunOptions = {}): Promise<HostRunResult> {
    return this.#p.requests.run(id, input, options);
  }

  /** Brings `id` to the GPU if the policy allows (else the CPU); answers where it is. */
  place(id: string): Promise<SessionDevice> {
    try {
      return this.#p.placer.ensure(id);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Restores the headroom when something else took VRAM (another process, a growing
   * pipeline): evicts idle pipelines, least recently used first, for the deficit only.
   * Releases the driver has not shown yet count as free; on a lost device or a driver
   * error nothing is evicted.
   */
  enforceHeadroom(): Promise<number> {
    return this.#p.decisions.run(() => this.#p.eviction.restoreHeadroom());
  }

  // --- explicit placement ---------------------------------------------------------------

  /** Loads `id` on `device` (the GPU through the policy). */
  async load(id: string, device: SessionDevice = this.defaultDevice): Promise<ModelRow> {
    this.#p.records.get(id);
    await this.#p.decisions.run(() => this.#p.placer.placeLocked(id, device, "api"));
    return this.model(id);
  }

  /** CPU → GPU through the policy. */
  rehydrate(id: string): Promise<ModelRow> {
    return this.load(id, "gpu");
  }

  /** GPU → CPU; answers once the driver shows the memory back (or says it did not). */
  async offload(id: string): Promise<{ model: ModelRow; release: ReleaseOutcome }> {
    const release = await this.#p.explicit.offload(id);
    return { model: this.model(id), release };
  }

  /** Releases the session and ends the worker; answers once the driver shows the memory back. */
  async unload(id: string): Promise<{ model: ModelRow; release: ReleaseOutcome }> {
    const release = await this.#p.explicit.unload(id);
    return { model: this.model(id), release };
  }

  /** Pins or unpins: a pinned pipeline is never evicted. */
  pin(id: string, pinned: boolean): ModelRow {
    const record = this.#p.records.get(id);
    record.pinned = pinned;
    if (pinned) this.#p.keepAlives.cancel(record);
    else this.#p.keepAlives.arm(record);
    this.#p.emit(pinChanged(id, pinned));
    return this.model(id);
  }

  /** Places a chain's members on the GPU when the pre-flight says it fits (one decision). */
  placeChain(ids: string[]): Promise<{ check: FitResult; placements: ChainPlacements }> {
    return this.#p.chains.place(ids);
  }

  /** The stream route's last resort: moves `id` to the CPU after repeated out-of-memory errors. */
  toCpu(id: string, why: string): Promise<SessionDevice> {
    return this.#p.decisions.run(() =>
      this.#p.moves.toCpu(id, this.#p.records.view(id), why, "stream")
    );
  }

  // --- exclusive sections: switch and test load (gate.ts, sections.ts) -------------------

  /** The exclusive section running now, or null. */
  get section(): string | null {
    return this.#p.gate.label;
  }

  /** True while a test load runs or waits to run. */
  get testLoadRunning(): boolean {
    return this.#p.gate.label === "test load";
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
    for (const one of ids) this.#p.records.get(one);
    return this.#switch(ids, {
      trigger: options.trigger ?? "api",
      auto: false,
      signal: options.signal,
      force: options.force,
    });
  }

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
    return this.#p.gate.run(label, () => switchLocked(this.#sectionOps(), ids, options), {
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
    for (const id of ids) this.#p.records.get(id);
    if (this.testLoadRunning) {
      throw new PipelineError("busy", "A test load is already running; wait for it to finish", 10);
    }
    return this.#p.gate.run(
      "test load",
      () => testLoadLocked(this.#sectionOps(), ids, device, onEvent),
    );
  }

  /** The locked operations a section may use while it holds the scheduler. */
  #sectionOps(): SectionOps {
    const records = this.#p.records;
    return {
      host: this.#o.host,
      view: (id) => records.view(id),
      holds: (id) => records.get(id).holds,
      pinned: (id) => records.get(id).pinned,
      cpuReason: (id) => records.get(id).cpuReason,
      defaultDevice: this.defaultDevice,
      onInsufficientVram: this.#o.onInsufficientVram,
      readFresh: () => this.#p.account.read(true),
      state: (reading) => this.#p.account.state(reading, false),
      footprint: (id) => this.#o.footprint(id),
      unload: (id, reason, trigger) => this.#p.moves.unload(id, reason, trigger),
      place: (id, device, trigger) => this.#p.placer.placeLocked(id, device, trigger),
      awaitReleases: (ids) => this.#p.releases.settled(ids),
      meter: this.#o.meter,
      emit: this.#p.emit,
      lastSwitch: this.#lastSwitch,
    };
  }

  // --- start and stop ---------------------------------------------------------------------

  /** Loads every model marked `preload` (on the default device, through the policy). */
  async preload(ids: string[]): Promise<void> {
    for (const id of ids) {
      await this.load(id).catch((error) => this.#p.emit(preloadFailed(id, error as Error)));
    }
  }

  /** Stops timers and gives up on releases in flight. */
  close(): void {
    this.#p.keepAlives.close();
    for (const record of this.#p.records.values()) this.#p.keepAlives.cancel(record);
    this.#p.releases.close();
  }

  /** Waits until no decision is queued or running (tests, shutdown). */
  settled(): Promise<void> {
    return this.#p.decisions.idle();
  }
}
