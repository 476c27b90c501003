/**
 * Exclusive sections (a switch, a test load): the gate that holds new requests while one
 * runs, the line that decides in exclusive mode which waiting request goes next (served on
 * the loaded model, or switched to, within the fairness limit), and what runs inside: the switch that cannot lose (pre-flight with the budget's
 * `switchFits`, unload the others, load, measure alone; put the previous models back on
 * a failure) and the test load (each model alone, measured). Sections move pipelines only
 * through the {@link SectionOps} the Scheduler lends them while it holds the section, and
 * log only events built in events.ts.
 * @module
 */
import type { Clock, TimerHandle } from "../clock.ts";
import { PipelineError } from "../pipelines/pipeline_error.ts";
import { PRIORITIES, type Priority } from "../types.ts";
import { formatBytes } from "../units.ts";
import type { SessionDevice } from "../pipelines/protocol.ts";
import { type GpuState, type ModelFootprint, switchFits } from "./budget.ts";
import { type Emit, switched, switchFailed, switchRefused } from "./events.ts";
import { startMeasure } from "./measure.ts";
import type {
  GpuReading,
  HostView,
  LoadMeasurement,
  Meter,
  PipelineHost,
  PipelineRecord,
  SwitchResult,
  TestLoadEvent,
} from "./types.ts";

/** The scheduler's locked operations, lent to a section while it runs. */
export interface SectionOps {
  host: Pick<PipelineHost, "ids" | "report" | "trackedBytes" | "defaultDevice">;
  view(id: string): HostView;
  /** The Scheduler's record of `id` (open streams, why it is on the CPU). */
  record(id: string): PipelineRecord;
  onInsufficientVram: "cpu" | "reject";
  /** A fresh reading of the device. */
  readFresh(): GpuReading;
  /** The GPU as the budget sees it for `reading` (pipelines left out). */
  state(reading: GpuReading): GpuState;
  footprint(id: string): ModelFootprint;
  unload(id: string, reason: string, trigger: string): Promise<void>;
  /** Places `id` through the policy (making room, falling back or refusing). */
  place(id: string, device: SessionDevice, trigger: string): Promise<SessionDevice>;
  /** Waits (bounded) until the driver shows these releases back. */
  awaitReleases(ids: string[]): Promise<void>;
  meter?: Meter;
  emit: Emit;
  /** Each model's last measured switch (for a switch to a model already loaded alone). */
  lastSwitch: Map<string, SwitchResult>;
}

/**
 * A switch (inside its exclusive section): answers at once when the targets are loaded
 * alone; refuses (busy) while another model has an open stream; in reject mode unloads
 * nothing when the targets cannot fit; otherwise unloads the others, loads the targets,
 * measures them alone, and on a failed load puts the previous models back and says so.
 */
export async function switchLocked(
  ops: SectionOps,
  ids: string[],
  options: { trigger: string; auto: boolean; force?: boolean },
): Promise<SwitchResult> {
  const kind = options.auto ? "auto-switch" : "switch";
  const targets = new Set(ids);
  const others = ops.host.ids().filter((id) =>
    !targets.has(id) && ops.view(id).placement !== "none"
  );
  const first = ids[0];
  if (others.length === 0 && ids.every((id) => ops.view(id).placement !== "none")) {
    // Loaded alone already: answer at once with its last measured figures (no reload).
    const report = ops.host.report(first);
    const last = ops.lastSwitch.get(ids.join("\u0000"));
    return {
      status: "success",
      model: first,
      models: ids,
      device: report.placement,
      vram_mb: last?.vram_mb ?? round(report.gpuBytes / 1e6),
      ram_mb: last?.ram_mb ?? round(Math.max(0, report.ramBytes) / 1e6),
      rss_mb: round((ops.meter?.rssBytes() ?? report.rssBytes) / 1e6),
      engine: report.engine,
      unloaded: [],
      load_ms: 0,
      already_loaded: true,
      reason: report.placement === "cpu" ? ops.record(first).cpuReason : null,
    };
  }
  // Pinned models are unloaded only on an explicit switch with `force`: an auto-switch (a
  // request in exclusive mode, maybe without the token) never unloads one.
  const pinned = others.filter((id) => ops.record(id).pinned);
  if (pinned.length > 0 && !options.force) {
    const names = `${pinned.join(", ")} ${pinned.length === 1 ? "is" : "are"} pinned`;
    throw new PipelineError(
      "busy",
      options.auto
        ? `Cannot switch to ${ids.join(", ")} for this request: ${names} and a request ` +
          `never unloads a pinned model; unpin it, or switch with POST /v1/models/switch ` +
          `{"model": "${first}", "force": true}`
        : `Switching to ${ids.join(", ")} would unload ${names}; send "force": true to ` +
          `unload ${pinned.length === 1 ? "it" : "them"}, or unpin first`,
    );
  }
  const held = others.filter((id) => ops.record(id).holds > 0);
  if (held.length > 0) {
    throw new PipelineError(
      "busy",
      `Cannot switch to ${ids.join(", ")}: ${held.join(", ")} ${
        held.length === 1 ? "has" : "have"
      } an open stream; close it first`,
      5,
    );
  }
  // Pre-flight: would the targets fit with everything else unloaded?
  const device = ops.host.defaultDevice;
  if (device === "gpu") {
    const reading = ops.readFresh();
    if (reading.state === "lost" && ops.onInsufficientVram === "reject") {
      throw new PipelineError(
        "gpu_lost",
        `Cannot switch to ${
          ids.join(", ")
        }: the GPU is lost (${reading.error}); retry when it recovers`,
        5,
      );
    }
    if (reading.state === "ok" && ops.onInsufficientVram === "reject") {
      const state = ops.state(reading);
      const fit = switchFits(
        ids.map((id) => {
          const view = ops.view(id);
          return {
            footprint: ops.footprint(id),
            gpuBytes: view.gpuBytes,
            onGpu: view.placement === "gpu",
          };
        }),
        state,
        ops.host.trackedBytes(),
      );
      if (!fit.fits) {
        const why = `${ids.join(", ")} ${ids.length === 1 ? "needs" : "need"} ${
          formatBytes(fit.neededBytes)
        }, and only ${formatBytes(Math.max(0, fit.availableBytes))} would be free above the ${
          formatBytes(fit.headroomBytes)
        } headroom with every other model unloaded`;
        ops.emit(switchRefused(ids, kind, why, options.trigger));
        throw new PipelineError(
          "oom",
          `Not enough GPU memory to switch: ${why}. Nothing was unloaded. Free VRAM, or set HEADROOM_ON_INSUFFICIENT_VRAM=cpu.`,
        );
      }
    }
  }
  const previous = others.map((id) => loadedBefore(ops, id));
  for (const { id } of previous) {
    await ops.unload(id, `${kind} to ${ids.join(", ")}`, options.trigger);
  }
  for (const id of ids) {
    if (ops.view(id).placement !== "none") {
      await ops.unload(id, `${kind}: a clean measurement`, options.trigger);
    }
  }
  await ops.awaitReleases([...previous.map((p) => p.id), ...ids]);
  const meter = ops.meter;
  if (previous.length > 0) await meter?.settle?.();
  const measure = startMeasure(meter);
  try {
    for (const id of ids) await ops.place(id, device, options.trigger);
  } catch (error) {
    // Put the previous models back, then say so.
    for (const id of ids) {
      await ops.unload(id, "failed switch", options.trigger).catch(() => {});
    }
    const back = await putBack(ops, previous, options.trigger);
    const message = `${kind} to ${ids.join(", ")} failed: ${
      (error as Error).message
    }; ${back.message}`;
    ops.emit(switchFailed(ids, message, error as Error, options.trigger));
    const code = error instanceof PipelineError ? error.code : "load_failed";
    throw new PipelineError(code, message);
  }
  const span = measure.finish();
  const used = span.deviceUsedDeltaBytes;
  const tracked = ids.reduce((sum, id) => sum + ops.view(id).gpuBytes, 0);
  // The driver's delta, but never less than the buffers we know we allocated (a device the
  // driver does not see, such as a software adapter, shows no delta at all).
  const vramBytes = used !== null ? Math.max(used, tracked) : tracked;
  // What the sessions hold (never negative), not the process RSS delta: workers share the process.
  const ramBytes = ids.reduce((sum, id) => sum + Math.max(0, ops.host.report(id).ramBytes), 0);
  const placement = ops.view(first).placement;
  const result: SwitchResult = {
    status: "success",
    model: first,
    models: ids,
    device: placement,
    vram_mb: round(Math.max(0, vramBytes) / 1e6),
    ram_mb: round(ramBytes / 1e6),
    rss_mb: round(span.rssAfterBytes / 1e6),
    engine: ops.host.report(first).engine,
    unloaded: previous.map((p) => p.id),
    load_ms: Math.round(span.ms),
    already_loaded: false,
    reason: placement === "cpu" ? ops.record(first).cpuReason : null,
  };
  ops.lastSwitch.set(ids.join("\u0000"), result);
  ops.emit(
    switched(ids, options, {
      placement,
      vramBytes: Math.max(0, vramBytes),
      vramMb: result.vram_mb,
      ramMb: result.ram_mb,
    }, { loadMs: result.load_ms, unloaded: result.unloaded, reason: result.reason }),
  );
  return result;
}

/**
 * The body of a test load (inside its exclusive section): each model alone, every other
 * model unloaded first, measured, then unloaded, with progress through `onEvent`.
 */
export async function testLoadLocked(
  ops: SectionOps,
  ids: string[],
  device: SessionDevice,
  onEvent: (event: TestLoadEvent) => void | Promise<void>,
): Promise<{ failed: number }> {
  const started = performance.now();
  // What was loaded before (placements and pins), put back at the end as a failed switch does.
  const previous = ops.host.ids().filter((id) => ops.view(id).placement !== "none")
    .map((id) => loadedBefore(ops, id));
  let failed = 0;
  for (const [index, id] of ids.entries()) {
    const total = ids.length;
    await onEvent({ event: "started", model: id, index, total });
    try {
      const held = ops.host.ids().filter((other) => ops.record(other).holds > 0);
      if (held.length > 0) {
        throw new PipelineError(
          "busy",
          `${held.join(", ")} has an open stream: cannot measure ${id} alone`,
        );
      }
      const loaded = ops.host.ids().filter((other) => ops.view(other).placement !== "none");
      for (const other of loaded) await ops.unload(other, "test load", "test-load");
      await ops.awaitReleases(loaded);
      await ops.meter?.settle?.();
      const measurement = await measureLoad(ops, id, device);
      await ops.unload(id, "test load", "test-load");
      await ops.awaitReleases([id]);
      await ops.meter?.settle?.();
      await onEvent({ event: "measured", model: id, index, total, measurement });
    } catch (error) {
      failed++;
      await onEvent({
        event: "error",
        model: id,
        index,
        total,
        message: (error as Error).message,
      });
    }
  }
  const back = await putBack(ops, previous, "test-load");
  await onEvent({
    event: "done",
    total: ids.length,
    failed,
    ms: performance.now() - started,
    restored: back.restored,
    notRestored: back.notRestored,
    message: `test load of ${ids.join(", ")}: ${
      ids.length - failed
    } measured, ${failed} failed; ${back.message}`,
  });
  return { failed };
}

/** A model loaded before a section moved it: where it was and whether it was pinned. */
interface LoadedBefore {
  id: string;
  placement: "gpu" | "cpu";
  pinned: boolean;
}

function loadedBefore(ops: SectionOps, id: string): LoadedBefore {
  return {
    id,
    placement: ops.view(id).placement === "gpu" ? "gpu" : "cpu",
    pinned: ops.record(id).pinned,
  };
}

/**
 * Puts `previous` back where they were (through the policy) with their pins, and says what
 * came back: after a failed switch, and after every test load.
 */
async function putBack(
  ops: SectionOps,
  previous: LoadedBefore[],
  trigger: string,
): Promise<{ restored: string[]; notRestored: string[]; message: string }> {
  const restored: string[] = [];
  const notRestored: string[] = [];
  for (const { id, placement, pinned } of previous) {
    try {
      if (ops.view(id).placement === "none") await ops.place(id, placement, trigger);
      ops.record(id).pinned = pinned;
      restored.push(id);
    } catch {
      notRestored.push(id);
    }
  }
  const message = previous.length === 0
    ? "nothing was loaded before"
    : notRestored.length === 0
    ? `put back: ${restored.join(", ")}`
    : `put back: ${restored.join(", ") || "none"}; could not reload ${notRestored.join(", ")}`;
  return { restored, notRestored, message };
}

/** Loads `id` alone and measures it against the baseline now. */
async function measureLoad(
  ops: SectionOps,
  id: string,
  device: SessionDevice,
): Promise<LoadMeasurement> {
  const measure = startMeasure(ops.meter);
  await ops.place(id, device, "test-load");
  const span = measure.finish();
  const view = ops.view(id);
  const report = ops.host.report(id);
  const used = span.deviceUsedDeltaBytes;
  return {
    model: id,
    device,
    placement: view.placement,
    vramBytes: used !== null ? Math.max(used, view.gpuBytes) : view.gpuBytes,
    trackedBytes: view.gpuBytes,
    ramBytes: Math.max(0, report.ramBytes),
    rssDeltaBytes: span.rssDeltaBytes,
    rssBytes: span.rssAfterBytes,
    engine: report.engine,
    ms: span.ms,
    vramBasis: used !== null && used >= view.gpuBytes ? "driver" : "tracked",
  };
}

function round(value: number): number {
  return Math.round(value * 10) / 10;
}

// --- the gate ---------------------------------------------------------------------------

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
  /** Told when a section ends and when a running request leaves (the exclusive line looks again). */
  onChange: () => void = () => {};

  constructor(decide: Decide) {
    this.#decide = decide;
  }

  /** Requests running now. */
  get running(): number {
    return this.#running;
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
    this.onChange();
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
      this.onChange();
    }
  }
}

// --- the exclusive line -------------------------------------------------------------------

/**
 * Most requests for the loaded models let run at once while a request for another model
 * waits in exclusive mode: bounds the slack past the fairness limit to what this many runs
 * take (they finish before the switch), and leaves the pipeline's queue enough to batch.
 */
export const EXCLUSIVE_AHEAD = 8;

/** What a waiting request is told to do: run on the models loaded now, or switch to its own. */
export type Turn = "run" | "switch";

/** One request waiting in exclusive mode. */
export interface Waiter {
  /** The models it needs loaded (OCR's group switches as one). */
  group: string[];
  priority: Priority;
  /** When it arrived, on the Scheduler's clock. */
  arrivedAt: number;
  /**
   * Called once, inside the line's pass, when it may go: "run" claims the request on the
   * spot, "switch" starts its switch (which closes the gate) before the pass goes on.
   */
  go(turn: Turn): void;
}

/**
 * The order of exclusive mode, which avoids swap thrash (A, B, A, B… each paying a switch)
 * within a fairness limit. Requests for the models loaded now run at once, unless a request
 * for another model that came before them has waited past `maxWaitMs`: the loaded model's
 * new requests never cut in front of one that waited past the limit. A switch starts for
 * the first request past the limit; before any is past it, only once the loaded models
 * have nothing waiting or running, for the most urgent waiting request (priority, then
 * arrival). So the loaded model's queue is served before switching away, and a switch
 * happens at most once per `maxWaitMs` while both keep coming; with `maxWaitMs` 0 it is
 * first come, first served (a switch per alternation). A request past the limit still
 * waits for the loaded model's requests already running to finish (the slack): at most
 * {@link EXCLUSIVE_AHEAD} of them run at once while another model's request waits.
 */
export class ExclusiveLine {
  readonly #gate: SectionGate;
  readonly #clock: Clock;
  readonly #maxWaitMs: number;
  readonly #loaded: (group: string[]) => boolean;
  /** Waiting requests, in arrival order. */
  #waiters: Waiter[] = [];
  #timer: TimerHandle | null = null;

  constructor(options: {
    gate: SectionGate;
    clock: Clock;
    maxWaitMs: number;
    /** True when every model of `group` is loaded now. */
    loaded: (group: string[]) => boolean;
  }) {
    this.#gate = options.gate;
    this.#clock = options.clock;
    this.#maxWaitMs = options.maxWaitMs;
    this.#loaded = options.loaded;
    this.#gate.onChange = () => this.pump();
  }

  /** Joins the line; `go` may be called at once (within this call). */
  join(waiter: Waiter): void {
    this.#waiters.push(waiter);
    this.pump();
  }

  /** Leaves the line without going (its client left or its deadline passed). */
  leave(waiter: Waiter): void {
    const before = this.#waiters.length;
    this.#waiters = this.#waiters.filter((w) => w !== waiter);
    if (this.#waiters.length !== before) this.pump();
  }

  /** Looks at the line: lets through whoever may go now, and sets a timer for when the next comes due. */
  pump(): void {
    if (this.#timer !== null) this.#clock.clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#gate.closed || this.#waiters.length === 0) return;
    const now = this.#clock.now();
    const contended = this.#waiters.some((w) => !this.#loaded(w.group));
    // Requests for the loaded models run, unless one for another model past the limit came
    // first; while another model's request waits, only EXCLUSIVE_AHEAD of them at a time.
    let overdue: Waiter | null = null;
    let heldBeforeOverdue = false;
    let running = this.#gate.running;
    const left: Waiter[] = [];
    const go: Waiter[] = [];
    for (const waiter of this.#waiters) {
      if (!this.#loaded(waiter.group)) {
        if (overdue === null && now - waiter.arrivedAt >= this.#maxWaitMs) overdue = waiter;
        left.push(waiter);
      } else if (overdue === null && (!contended || running < EXCLUSIVE_AHEAD)) {
        go.push(waiter);
        running++;
      } else {
        if (overdue === null) heldBeforeOverdue = true;
        left.push(waiter);
      }
    }
    this.#waiters = left;
    for (const waiter of go) waiter.go("run");
    const others = left.filter((w) => !this.#loaded(w.group));
    if (others.length === 0) return;
    // A switch: for the first request past the limit once nothing for the loaded models is
    // left ahead of it; before any is past it, once the loaded models have nothing waiting
    // or running, for the most urgent request.
    let next: Waiter | null = null;
    if (overdue !== null && !heldBeforeOverdue) next = overdue;
    else if (overdue === null && others.length === left.length && this.#gate.running === 0) {
      next = others.reduce((best, w) => moreUrgent(w, best) ? w : best);
    }
    if (next !== null) {
      const chosen = next;
      this.#waiters = this.#waiters.filter((w) => w !== chosen);
      chosen.go("switch");
      return;
    }
    // Nothing may switch yet: look again when the first waiting request comes due (a
    // request finishing looks again too, through the gate).
    if (overdue !== null) return;
    const first = Math.min(...others.map((w) => w.arrivedAt)) + this.#maxWaitMs;
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = null;
      this.pump();
    }, Math.max(0, first - now));
  }

  /** Stops the timer (the Scheduler closes). */
  close(): void {
    if (this.#timer !== null) this.#clock.clearTimeout(this.#timer);
    this.#timer = null;
  }
}

/** True when `a` goes before `b`: a higher priority (earlier in {@link PRIORITIES}), then an earlier arrival. */
function moreUrgent(a: Waiter, b: Waiter): boolean {
  const order = PRIORITIES.indexOf(a.priority) - PRIORITIES.indexOf(b.priority);
  return order < 0 || (order === 0 && a.arrivedAt < b.arrivedAt);
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
