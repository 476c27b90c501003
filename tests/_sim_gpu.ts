/**
 * A simulated GPU for testing the scheduler: one object that is both the
 * {@link PipelineHost} (a model of the PipelineManager) and the {@link DeviceView}
 * (a model of the VRAM monitor and its driver). Free bytes = total − the GPU bytes of every simulated
 * pipeline on the GPU − what another tenant holds. Each pipeline has a fixed GPU size;
 * `load`/`offload` move it. Like the real manager, the operations on one pipeline run
 * one at a time, a pipeline being offloaded still reports "gpu" until the move ends, and
 * `run` runs where the pipeline is (not_loaded when it is not loaded). With
 * `freeDelayMs`, the device shows freed bytes only that long after a release (on the
 * given clock), as drivers do.
 *
 * Out-of-memory failures: a GPU load that does not fit the device's free bytes throws
 * `PipelineError("oom")`, and so does the next GPU load or GPU run of a pipeline after
 * {@link SimGpu.failGpuLoads} / {@link SimGpu.failGpuRuns}.
 * @module
 */
import { PipelineError } from "../core/pipelines/pipeline_error.ts";
import type { ModelFootprint } from "../core/placement/budget.ts";
import type { DeviceView, Freshness, GpuReading } from "../core/placement/types.ts";
import { Scheduler, type SchedulerOptions } from "../core/placement/scheduler.ts";
import { EventLog } from "../core/events.ts";
import type {
  HostRunOptions,
  HostRunResult,
  HostTransition,
  HostView,
  PipelineHost,
} from "../core/placement/types.ts";
import type { HostReport } from "../core/types.ts";
import type { RunInput, SessionDevice } from "../core/pipelines/protocol.ts";
import { prng } from "../core/random.ts";
import { FakeClock } from "./_fake_clock.ts";
import { SerialQueue } from "../core/serial_queue.ts";

export { FakeClock, prng };

export const KiB = 2 ** 10;
export const MiB = 2 ** 20;
export const GiB = 2 ** 30;

/** One simulated pipeline. */
export interface SimPipelineSpec {
  id: string;
  /** Its GPU footprint when on the GPU. */
  gpuBytes: number;
  placement?: "gpu" | "cpu" | "none";
  gpuMismatch?: boolean;
  /** What the budget is told (default: the exact `gpuBytes`, as a saved profile). */
  profileBytes?: number | null;
  fileBytes?: number;
  /** RAM its session holds while loaded, on either device (default: a tenth of `gpuBytes`). */
  ramBytes?: number;
}

interface SimPipeline {
  spec: SimPipelineSpec;
  placement: "gpu" | "cpu" | "none";
  gpuMismatch: boolean;
  queue: SerialQueue;
}

/** Something the simulated target was asked to do. */
export interface SimCall {
  op: "load" | "offload" | "unload" | "run";
  id: string;
  device?: SessionDevice;
  /** How it ended: the device it ran or landed on, or the error code. */
  result?: string;
}

/** Options of {@link SimGpu}. */
export interface SimGpuOptions {
  totalBytes: number;
  pipelines?: SimPipelineSpec[];
  /** False: no GPU is usable. */
  usable?: boolean;
  /** Latency of each load, offload and run (default: one microtask). */
  delay?: (op: SimCall["op"], id: string) => Promise<void>;
  /** The clock late frees are timed on. */
  clock?: FakeClock;
  /** The device shows freed bytes this long after a release (default 0: at once). */
  freeDelayMs?: number;
  /** Whether the device view confirms releases (a driver that reports used memory). */
  driver?: boolean;
  /**
   * False: the driver's figures leave out our pipelines' bytes (the NVML double while the
   * sessions live on the software adapter): loads and releases never show in them.
   */
  driverSeesPipelines?: boolean;
}

/** The simulated device and pipeline manager. */
export class SimGpu implements PipelineHost, DeviceView {
  totalBytes: number;
  usable: boolean;
  /** The driver's health as the device view reports it. */
  deviceState: "ok" | "error" | "lost" = "ok";
  clock: FakeClock;
  freeDelayMs: number;
  driver: boolean;
  driverSeesPipelines: boolean;
  /** Bytes released but not shown by the device yet, each with when it shows. */
  #late: Array<{ bytes: number; at: number }> = [];
  /** The last good reading (an errored device repeats it). */
  #lastGood: GpuReading | null = null;
  /** Bytes held on the device by another process. */
  otherTenantBytes = 0;
  /** Every operation asked of the target, in order. */
  readonly calls: SimCall[] = [];
  /** Called at the start of every `offload`, before anything moves. */
  onOffloadStart?: (id: string) => void;
  /** Called when a run answers (not when it fails). */
  onRunDone?: (id: string) => void;
  delay: (op: SimCall["op"], id: string) => Promise<void>;
  readonly #pipelines = new Map<string, SimPipeline>();
  readonly #failLoads = new Map<string, number>();
  readonly #failRuns = new Map<string, number>();
  /** GPU bytes of the pipelines on the GPU, kept up to date on every move. */
  #ourBytes = 0;

  constructor(options: SimGpuOptions) {
    this.totalBytes = options.totalBytes;
    this.usable = options.usable ?? true;
    this.delay = options.delay ?? (() => Promise.resolve());
    this.clock = options.clock ?? new FakeClock();
    this.freeDelayMs = options.freeDelayMs ?? 0;
    this.driver = options.driver ?? false;
    this.driverSeesPipelines = options.driverSeesPipelines ?? true;
    for (const spec of options.pipelines ?? []) this.add(spec);
  }

  /** Registers a pipeline. */
  add(spec: SimPipelineSpec): void {
    const placement = spec.placement ?? "none";
    this.#pipelines.set(spec.id, {
      spec,
      placement,
      gpuMismatch: spec.gpuMismatch ?? false,
      queue: new SerialQueue(),
    });
    if (placement === "gpu") this.#ourBytes += spec.gpuBytes;
  }

  /** Ids of every pipeline, in registration order. */
  ids(): string[] {
    return [...this.#pipelines.keys()];
  }

  // --- DeviceView -------------------------------------------------------------------

  #reads = 0;

  read(_when: Freshness): GpuReading {
    const seq = ++this.#reads;
    if (!this.usable) {
      return {
        state: "none",
        freeBytes: 0,
        totalBytes: 0,
        trackedBytes: this.#ourBytes,
        confirmsReleases: false,
        seq,
      };
    }
    if (this.deviceState !== "ok" && this.#lastGood) {
      return {
        ...this.#lastGood,
        state: this.deviceState,
        error: `simulated ${this.deviceState}`,
        seq,
      };
    }
    const reading: GpuReading = {
      state: this.deviceState,
      freeBytes: this.freeBytes(),
      totalBytes: this.totalBytes,
      trackedBytes: this.#ourBytes,
      confirmsReleases: this.driver,
      seq,
    };
    if (this.deviceState === "ok") this.#lastGood = reading;
    return reading;
  }

  /** Free bytes on the device now, as its driver shows them (never below zero). */
  freeBytes(): number {
    const ours = this.driverSeesPipelines ? this.#ourBytes + this.lateBytes() : 0;
    return Math.max(0, this.totalBytes - ours - this.otherTenantBytes);
  }

  /** Bytes released but not shown yet. */
  lateBytes(): number {
    const now = this.clock.now();
    this.#late = this.#late.filter((l) => l.at > now);
    return this.#late.reduce((sum, l) => sum + l.bytes, 0);
  }

  /** Bytes of the simulated pipelines on the GPU. */
  gpuBytes(): number {
    return this.#ourBytes;
  }

  // --- PipelineHost -----------------------------------------------------------------

  get defaultDevice(): SessionDevice {
    return this.usable ? "gpu" : "cpu";
  }

  trackedBytes(): number {
    return this.#ourBytes;
  }

  view(id: string): HostView | undefined {
    const p = this.#pipelines.get(id);
    return p && {
      id,
      state: p.placement === "none" ? "unloaded" : p.placement,
      placement: p.placement,
      gpuBytes: p.placement === "gpu" ? p.spec.gpuBytes : 0,
      gpuPeakBytes: p.placement === "gpu" ? p.spec.gpuBytes : 0,
      gpuMismatch: p.gpuMismatch ? { maxAbsError: 1, tolerance: 0, checkedAt: 0 } : null,
    };
  }

  load(id: string, device: SessionDevice): Promise<HostTransition> {
    const p = this.#get(id);
    const call: SimCall = { op: "load", id, device };
    this.calls.push(call);
    return p.queue.run(async () => {
      await this.delay("load", id);
      if (device === "gpu") {
        if (p.placement === "gpu") {
          call.result = "gpu";
          return { kind: "none", placement: "gpu", releasedBytes: 0 };
        }
        if (this.#take(this.#failLoads, id)) {
          call.result = "oom";
          throw new PipelineError("oom", `${id}: simulated out-of-memory on a GPU load`);
        }
        if (p.spec.gpuBytes > this.freeBytes()) {
          call.result = "oom";
          throw new PipelineError(
            "oom",
            `${id}: needs ${p.spec.gpuBytes} B, the device has ${this.freeBytes()} B free`,
          );
        }
      }
      if (p.placement === device) {
        call.result = device;
        return { kind: "none", placement: device, releasedBytes: 0 };
      }
      const released = this.#move(p, device);
      call.result = device;
      return { kind: `load:${device}`, placement: device, releasedBytes: released };
    });
  }

  offload(id: string): Promise<HostTransition> {
    const p = this.#get(id);
    const call: SimCall = { op: "offload", id };
    this.calls.push(call);
    this.onOffloadStart?.(id);
    return p.queue.run(async () => {
      await this.delay("offload", id);
      if (p.placement === "cpu") {
        call.result = "cpu";
        return { kind: "none", placement: "cpu", releasedBytes: 0 };
      }
      if (p.placement !== "gpu") {
        call.result = "not_loaded";
        throw new PipelineError("not_loaded", `${id} is not on the GPU: nothing to offload`);
      }
      const released = this.#move(p, "cpu");
      call.result = "cpu";
      return { kind: "offload", placement: "cpu", releasedBytes: released };
    });
  }

  unload(id: string): Promise<HostTransition> {
    const p = this.#get(id);
    const call: SimCall = { op: "unload", id };
    this.calls.push(call);
    return p.queue.run(async () => {
      await this.delay("unload", id);
      const released = this.#move(p, "none");
      call.result = "none";
      return { kind: "unload", placement: "none", releasedBytes: released };
    });
  }

  run(id: string, _input: RunInput, options: HostRunOptions = {}): Promise<HostRunResult> {
    const p = this.#get(id);
    const call: SimCall = { op: "run", id };
    this.calls.push(call);
    return p.queue.run(async () => {
      if (p.placement === "none") {
        call.result = "not_loaded";
        throw new PipelineError("not_loaded", `${id} is not loaded`);
      }
      await this.delay("run", id);
      const device = p.placement as SessionDevice;
      call.device = device;
      if (device === "gpu" && this.#take(this.#failRuns, id)) {
        call.result = "oom";
        throw new PipelineError("oom", `${id}: simulated out-of-memory while running`);
      }
      call.result = device;
      this.onRunDone?.(id);
      return { output: { kind: "tensors", tensors: {} }, ms: 1, queueMs: 0, device };
    }, options.signal);
  }

  replace(id: string, _reason: string): void {
    this.#move(this.#get(id), "none");
  }

  report(id: string): HostReport {
    const p = this.#get(id);
    const view = this.view(id)!;
    return {
      id,
      name: id,
      tags: [],
      plugin: false,
      state: view.state,
      placement: view.placement,
      gpuBytes: view.gpuBytes,
      gpuBuffers: 0,
      gpuPeakBytes: view.gpuBytes,
      rssBytes: 0,
      ramBytes: view.placement === "none" ? 0 : p.spec.ramBytes ?? p.spec.gpuBytes / 10,
      pluginRssBytes: null,
      engine: view.placement === "gpu" ? "webgpu" : view.placement === "cpu" ? "wasm" : null,
      modelBytes: null,
      error: null,
      lastTransition: null,
      gpuMismatch: view.gpuMismatch,
      display: p.placement === "none" ? "never" : "loaded",
      gpuProfile: null,
      cpuProfile: null,
      inputs: [],
      outputs: [],
      batch: null,
    };
  }

  close(): void {}

  // --- Controls ---------------------------------------------------------------------

  /** Marks a pipeline as failing the GPU/CPU parity check (it stays on the CPU). */
  setGpuMismatch(id: string, mismatch: boolean): void {
    this.#get(id).gpuMismatch = mismatch;
  }

  /** The next `times` GPU loads of `id` throw out-of-memory (Infinity: every one). */
  failGpuLoads(id: string, times: number): void {
    this.#failLoads.set(id, times);
  }

  /** The next `times` GPU runs of `id` throw out-of-memory. */
  failGpuRuns(id: string, times: number): void {
    this.#failRuns.set(id, times);
  }

  /** Where `id` is now. */
  placementOf(id: string): "gpu" | "cpu" | "none" {
    return this.#get(id).placement;
  }

  /** What the budget knows of `id`: by default its exact size, as a saved profile. */
  footprint(id: string): ModelFootprint {
    const p = this.#pipelines.get(id);
    if (!p) return { id, fileBytes: 0, trackedBytes: null, profileBytes: null };
    const profile = p.spec.profileBytes === undefined ? p.spec.gpuBytes : p.spec.profileBytes;
    return {
      id,
      fileBytes: p.spec.fileBytes ?? Math.ceil(p.spec.gpuBytes / 1.5),
      trackedBytes: p.placement === "gpu" ? p.spec.gpuBytes : null,
      profileBytes: profile,
    };
  }

  /** The file bytes the budget's estimate starts from ({@link footprint}'s). */
  fileBytes(id: string): number {
    return this.footprint(id).fileBytes;
  }

  /** The saved measured peak ({@link footprint}'s profile figure). */
  measuredPeakBytes(id: string): number | null {
    return this.footprint(id).profileBytes;
  }

  /** Ops that were asked of the target, as "op id[:device]=result" lines. */
  trace(): string[] {
    return this.calls.map((c) => `${c.op} ${c.id}${c.device ? `:${c.device}` : ""}=${c.result}`);
  }

  #get(id: string): SimPipeline {
    const p = this.#pipelines.get(id);
    if (!p) throw new PipelineError("unknown_model", `Unknown model "${id}"`);
    return p;
  }

  /** Moves `p`, answering the GPU bytes it released (shown late with `freeDelayMs`). */
  #move(p: SimPipeline, to: "gpu" | "cpu" | "none"): number {
    let released = 0;
    if (p.placement === "gpu" && to !== "gpu") {
      this.#ourBytes -= p.spec.gpuBytes;
      released = p.spec.gpuBytes;
      if (this.freeDelayMs > 0) {
        this.#late.push({ bytes: released, at: this.clock.now() + this.freeDelayMs });
      }
    }
    if (to === "gpu" && p.placement !== "gpu") this.#ourBytes += p.spec.gpuBytes;
    p.placement = to;
    return released;
  }

  #take(counts: Map<string, number>, id: string): boolean {
    const left = counts.get(id) ?? 0;
    if (left <= 0) return false;
    counts.set(id, left - 1);
    return true;
  }
}

/**
 * A Scheduler over `sim` (its host and its device at once) with the tests' usual set-up:
 * the budget is the device's total, no headroom, footprints from the sim, its clock, CPU
 * fallback. `options` overrides any of it.
 */
export function schedulerOnSim(sim: SimGpu, options: Partial<SchedulerOptions> = {}): Scheduler {
  return new Scheduler({
    host: sim,
    device: sim,
    events: new EventLog(1000),
    budgetFor: (total) => total,
    headroomBytes: 0,
    sizes: sim,
    onInsufficientVram: "cpu",
    clock: sim.clock,
    ...options,
  });
}

/**
 * Exclusive mode's workload (the thrash case): models that cannot both be loaded (`a`,
 * `b`, `c`, 600 MB each on a 1000 MB device, `a` loaded), loads and runs that take
 * `loadMs` and `runMs` on a fake clock (each switch is a load), and the fairness limit
 * `maxWaitMs`. `request(id)` sends one now; `drain()` moves the clock until every request
 * has answered and gives each one's model, arrival and time to answer. For the exclusive
 * line's tests and bench/ab_switch.ts.
 */
export function exclusivePair(
  maxWaitMs: number,
  times: { runMs: number; loadMs: number } = { runMs: 10, loadMs: 100 },
) {
  const MB = 1e6;
  const clock = new FakeClock();
  const wait = (ms: number) => new Promise<void>((resolve) => clock.setTimeout(resolve, ms));
  const sim = new SimGpu({
    totalBytes: 1000 * MB,
    pipelines: [
      { id: "a", gpuBytes: 600 * MB, placement: "gpu" },
      { id: "b", gpuBytes: 600 * MB },
      { id: "c", gpuBytes: 600 * MB },
    ],
    clock,
    delay: (op) =>
      op === "run" ? wait(times.runMs) : op === "load" ? wait(times.loadMs) : Promise.resolve(),
  });
  const scheduler = schedulerOnSim(sim, { mode: "exclusive", maxWaitMs });
  /** Switches so far (each is one load). */
  const switches = () => sim.calls.filter((call) => call.op === "load").length;
  const answers: Array<Promise<{ id: string; at: number; ms: number }>> = [];
  const input: RunInput = { kind: "tensors", tensors: {} };
  const request = (id: string, priority?: "high" | "normal" | "low") => {
    const at = clock.now();
    answers.push(
      scheduler.run(id, input, { priority }).then(() => ({ id, at, ms: clock.now() - at })),
    );
  };
  const drain = async () => {
    let done = false;
    const all = Promise.all(answers).finally(() => (done = true));
    for (let i = 0; i < 1_000 && !done; i++) await clock.tick(1_000);
    if (!done) throw new Error("exclusivePair: the requests did not all answer in 1,000 s");
    return await all;
  };
  return { clock, sim, scheduler, switches, request, drain };
}
