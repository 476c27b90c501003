/**
 * A simulated GPU for testing the placement policy: one object that is both the
 * {@link PlacementTarget} (a model of the PipelineManager) and the {@link DeviceView}
 * (a model of the VRAM monitor). Free bytes = total − the GPU bytes of every simulated
 * pipeline on the GPU − what another tenant holds. Each pipeline has a fixed GPU size;
 * `load`/`offload` move it. Like the real manager, the operations on one pipeline run
 * one at a time, a pipeline being offloaded still reports "gpu" until the move ends, and
 * `run` runs where the pipeline is (loading it first when it is not loaded).
 *
 * Out-of-memory failures: a GPU load that does not fit the device's free bytes throws
 * `PipelineError("oom")`, and so does the next GPU load or GPU run of a pipeline after
 * {@link SimGpu.failGpuLoads} / {@link SimGpu.failGpuRuns}.
 * @module
 */
import { PipelineError } from "../core/pipelines/errors.ts";
import type { ModelFootprint } from "../core/placement/budget.ts";
import type { DeviceView, PlacementTarget, PlacementView } from "../core/placement/offloader.ts";
import type { RunInput, RunOutput, SessionDevice } from "../workers/protocol.ts";
import { prng } from "../core/random.ts";

export { prng };

export const KiB = 2 ** 10;
export const MiB = 2 ** 20;
export const GiB = 2 ** 30;

/** One simulated pipeline. */
export interface SimPipelineSpec {
  id: string;
  /** Its GPU footprint when on the GPU. */
  gpuBytes: number;
  placement?: "gpu" | "cpu" | "none";
  pinned?: boolean;
  gpuMismatch?: boolean;
  /** What the budget is told (default: the exact `gpuBytes`, as a saved profile). */
  profileBytes?: number | null;
  fileBytes?: number;
}

interface SimPipeline {
  spec: SimPipelineSpec;
  placement: "gpu" | "cpu" | "none";
  pinned: boolean;
  gpuMismatch: boolean;
  queue: Promise<unknown>;
}

/** Something the simulated target was asked to do. */
export interface SimCall {
  op: "load" | "offload" | "run";
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
  /** Offer only `placements()`, as the PipelineManager does today (no `placement(id)`). */
  listOnly?: boolean;
  /** Latency of each load, offload and run (default: one microtask). */
  delay?: (op: SimCall["op"], id: string) => Promise<void>;
}

/** The simulated device and pipeline manager. */
export class SimGpu implements PlacementTarget, DeviceView {
  totalBytes: number;
  usable: boolean;
  /** Bytes held on the device by another process. */
  otherTenantBytes = 0;
  /** Every operation asked of the target, in order. */
  readonly calls: SimCall[] = [];
  /** Called at the start of every `offload`, before anything moves. */
  onOffloadStart?: (id: string) => void;
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
    if (options.listOnly) this.placement = undefined;
    for (const spec of options.pipelines ?? []) this.add(spec);
  }

  /** Registers a pipeline. */
  add(spec: SimPipelineSpec): void {
    const placement = spec.placement ?? "none";
    this.#pipelines.set(spec.id, {
      spec,
      placement,
      pinned: spec.pinned ?? false,
      gpuMismatch: spec.gpuMismatch ?? false,
      queue: Promise.resolve(),
    });
    if (placement === "gpu") this.#ourBytes += spec.gpuBytes;
  }

  /** Ids of every pipeline, in registration order. */
  ids(): string[] {
    return [...this.#pipelines.keys()];
  }

  // --- DeviceView -------------------------------------------------------------------

  available(): boolean {
    return this.usable;
  }

  read(): { freeBytes: number; totalBytes: number } {
    return { freeBytes: this.freeBytes(), totalBytes: this.totalBytes };
  }

  /** Free bytes on the device now (never below zero). */
  freeBytes(): number {
    return Math.max(0, this.totalBytes - this.#ourBytes - this.otherTenantBytes);
  }

  /** Bytes of the simulated pipelines on the GPU. */
  gpuBytes(): number {
    return this.#ourBytes;
  }

  // --- PlacementTarget --------------------------------------------------------------

  placements(): PlacementView[] {
    const views: PlacementView[] = [];
    for (const p of this.#pipelines.values()) {
      views.push({
        id: p.spec.id,
        placement: p.placement,
        gpuBytes: p.placement === "gpu" ? p.spec.gpuBytes : 0,
        pinned: p.pinned,
        gpuMismatch: p.gpuMismatch,
      });
    }
    return views;
  }

  /** One pipeline's view (the optional direct lookup), unless turned off with `listOnly`. */
  placement?: (id: string) => PlacementView | undefined = (id) => {
    const p = this.#pipelines.get(id);
    return p && {
      id,
      placement: p.placement,
      gpuBytes: p.placement === "gpu" ? p.spec.gpuBytes : 0,
      pinned: p.pinned,
      gpuMismatch: p.gpuMismatch,
    };
  };

  load(id: string, device: SessionDevice): Promise<unknown> {
    const p = this.#get(id);
    const call: SimCall = { op: "load", id, device };
    this.calls.push(call);
    return this.#enqueue(p, async () => {
      await this.delay("load", id);
      if (device === "gpu") {
        if (p.placement === "gpu") return (call.result = "gpu");
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
      this.#move(p, device);
      return (call.result = device);
    });
  }

  offload(id: string): Promise<unknown> {
    const p = this.#get(id);
    const call: SimCall = { op: "offload", id };
    this.calls.push(call);
    this.onOffloadStart?.(id);
    return this.#enqueue(p, async () => {
      await this.delay("offload", id);
      if (p.placement === "cpu") return (call.result = "cpu");
      if (p.placement !== "gpu") {
        call.result = "not_loaded";
        throw new PipelineError("not_loaded", `${id} is not on the GPU: nothing to offload`);
      }
      this.#move(p, "cpu");
      return (call.result = "cpu");
    });
  }

  run(
    id: string,
    _input: RunInput,
    options: { device: SessionDevice },
  ): Promise<{ output: RunOutput; ms: number; device: SessionDevice }> {
    const p = this.#get(id);
    const call: SimCall = { op: "run", id, device: options.device };
    this.calls.push(call);
    return this.#enqueue(p, async () => {
      if (p.placement === "none") {
        // Like the manager: load on the asked device, falling back to the CPU.
        const fits = options.device === "gpu" && this.usable &&
          p.spec.gpuBytes <= this.freeBytes();
        this.#move(p, fits ? "gpu" : "cpu");
      }
      await this.delay("run", id);
      const device = p.placement as SessionDevice;
      if (device === "gpu" && this.#take(this.#failRuns, id)) {
        call.result = "oom";
        throw new PipelineError("oom", `${id}: simulated out-of-memory while running`);
      }
      call.result = device;
      return { output: { kind: "tensors", tensors: {} }, ms: 1, device };
    });
  }

  // --- Controls ---------------------------------------------------------------------

  /** The manager's `setPinned`: the target owns the flag, the offloader reads it. */
  setPinned(id: string, pinned: boolean): void {
    this.#get(id).pinned = pinned;
  }

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

  isPinned(id: string): boolean {
    return this.#get(id).pinned;
  }

  /** Bytes the pipelines on the GPU that are pinned hold. */
  pinnedGpuBytes(): number {
    let sum = 0;
    for (const p of this.#pipelines.values()) {
      if (p.placement === "gpu" && p.pinned) sum += p.spec.gpuBytes;
    }
    return sum;
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

  /** Ops that were asked of the target, as "op id[:device]=result" lines. */
  trace(): string[] {
    return this.calls.map((c) => `${c.op} ${c.id}${c.device ? `:${c.device}` : ""}=${c.result}`);
  }

  #get(id: string): SimPipeline {
    const p = this.#pipelines.get(id);
    if (!p) throw new PipelineError("unknown_model", `Unknown model "${id}"`);
    return p;
  }

  #move(p: SimPipeline, to: "gpu" | "cpu"): void {
    if (p.placement === "gpu") this.#ourBytes -= p.spec.gpuBytes;
    if (to === "gpu") this.#ourBytes += p.spec.gpuBytes;
    p.placement = to;
  }

  #take(counts: Map<string, number>, id: string): boolean {
    const left = counts.get(id) ?? 0;
    if (left <= 0) return false;
    counts.set(id, left - 1);
    return true;
  }

  #enqueue<T>(p: SimPipeline, op: () => Promise<T>): Promise<T> {
    const result = p.queue.then(op, op);
    p.queue = result.catch(() => {});
    return result;
  }
}

/** A clock for the offloader that only moves when told. */
export class FakeClock {
  constructor(public ms = 1_000_000) {}
  now = (): number => this.ms;
  advance(ms: number): void {
    this.ms += ms;
  }
}
