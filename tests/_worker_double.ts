/**
 * The real PipelineManager over in-process worker doubles: the same host code the
 * service runs (queues, state machine, running tracked sum, measurements), with each
 * worker replaced by a small object that speaks the worker protocol and holds a fixed
 * number of "GPU bytes" while on the GPU. {@link DoubleGpu} is also the device view (free
 * = total − tracked − another tenant), so the scheduler's contract suite and property
 * test run on the real host as fast as on the model of it.
 */
import { Catalog, type CatalogModel } from "../core/models/catalog.ts";
import { EventLog } from "../core/events.ts";
import { PipelineManager, type WorkerHandle } from "../workers/manager.ts";
import type { ModelFootprint } from "../core/placement/budget.ts";
import type { DeviceView, Freshness, GpuReading } from "../core/placement/types.ts";
import type {
  ErrorReply,
  OkReply,
  PipelineSpec,
  Replies,
  RequestKind,
  RunInput,
  SessionDevice,
  WireTensor,
  WorkerStatus,
} from "../core/pipelines/protocol.ts";
import type { SimCall, SimPipelineSpec } from "./_sim_gpu.ts";

/** Any file that exists: the doubles never read it. */
const SOME_FILE = new URL("./_worker_double.ts", import.meta.url).pathname;

/**
 * A catalog entry for a pipeline that runs on a worker double: its "model file" is this
 * module (the doubles never read it), no plugin, no declared inputs.
 */
export function doubleCatalogModel(id: string): CatalogModel {
  return {
    id,
    name: id,
    source: SOME_FILE,
    tags: [],
    inputs: undefined,
    outputs: undefined,
    pluginUrl: null,
    assets: {},
    syntheticBytes: null,
    path: SOME_FILE,
    preload: false,
    batch: null,
  };
}

/** Options of {@link DoubleGpu}. */
export interface DoubleGpuOptions {
  totalBytes: number;
  pipelines: SimPipelineSpec[];
  usable?: boolean;
  events?: EventLog;
}

/** The device and the worker doubles behind a real PipelineManager. */
export class DoubleGpu implements DeviceView {
  readonly host: PipelineManager;
  totalBytes: number;
  usable: boolean;
  otherTenantBytes = 0;
  deviceState: "ok" | "error" | "lost" = "ok";
  readonly calls: SimCall[] = [];
  onOffloadStart?: (id: string) => void;
  delay: (op: SimCall["op"], id: string) => Promise<void> = () => Promise.resolve();
  readonly #specs = new Map<string, SimPipelineSpec>();
  readonly #failLoads = new Map<string, number>();
  readonly #failRuns = new Map<string, number>();
  /** Workers started so far, by model. */
  readonly started = new Map<string, number>();

  constructor(options: DoubleGpuOptions) {
    this.totalBytes = options.totalBytes;
    this.usable = options.usable ?? true;
    for (const spec of options.pipelines) this.#specs.set(spec.id, spec);
    const models = options.pipelines.map((spec) => doubleCatalogModel(spec.id));
    this.host = new PipelineManager({
      catalog: new Catalog(models, "/nonexistent"),
      events: options.events ?? new EventLog(10_000),
      gpuAvailable: this.usable,
      parityTolerance: null,
      startWorker: (spec) => Promise.resolve(this.#worker(spec)),
      // The doubled workers load no file: nothing to scan.
      scanModelFile: (path) =>
        Promise.resolve({ path, graphBytes: 0, externalData: [], totalBytes: 0 }),
    });
    // Offloads are seen when asked of the host (as the model host sees them), not later
    // in the worker: what the scheduler knew when it decided is what the tests check.
    const offload = this.host.offload.bind(this.host);
    this.host.offload = (id) => {
      this.onOffloadStart?.(id);
      return offload(id);
    };
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
        trackedBytes: 0,
        confirmsReleases: false,
        seq,
      };
    }
    return {
      state: this.deviceState,
      freeBytes: this.freeBytes(),
      totalBytes: this.totalBytes,
      trackedBytes: this.host.trackedBytes(),
      confirmsReleases: false,
      seq,
    };
  }

  freeBytes(): number {
    return Math.max(0, this.totalBytes - this.host.trackedBytes() - this.otherTenantBytes);
  }

  gpuBytes(): number {
    return this.host.trackedBytes();
  }

  // --- the same controls as SimGpu ----------------------------------------------------

  ids(): string[] {
    return this.host.ids();
  }

  placementOf(id: string): "gpu" | "cpu" | "none" {
    return this.host.view(id)!.placement;
  }

  failGpuLoads(id: string, times: number): void {
    this.#failLoads.set(id, times);
  }

  failGpuRuns(id: string, times: number): void {
    this.#failRuns.set(id, times);
  }

  footprint(id: string): ModelFootprint {
    const spec = this.#specs.get(id);
    if (!spec) return { id, fileBytes: 0, trackedBytes: null, profileBytes: null };
    return {
      id,
      fileBytes: spec.fileBytes ?? Math.ceil(spec.gpuBytes / 1.5),
      trackedBytes: this.placementOf(id) === "gpu" ? spec.gpuBytes : null,
      profileBytes: spec.profileBytes === undefined ? spec.gpuBytes : spec.profileBytes,
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

  /** An explicit offload, straight to the host (as an API call would, without the scheduler). */
  offload(id: string): Promise<unknown> {
    return this.host.offload(id);
  }

  trace(): string[] {
    return this.calls.map((c) => `${c.op} ${c.id}${c.device ? `:${c.device}` : ""}=${c.result}`);
  }

  #take(counts: Map<string, number>, id: string): boolean {
    const left = counts.get(id) ?? 0;
    if (left <= 0) return false;
    counts.set(id, left - 1);
    return true;
  }

  /** One worker double for `spec`. */
  #worker(spec: PipelineSpec): WorkerHandle {
    const take = (counts: Map<string, number>) => this.#take(counts, id);
    const failLoads = this.#failLoads;
    const failRuns = this.#failRuns;
    const free = () => this.freeBytes();
    const calls = this.calls;
    const delay = (op: SimCall["op"]) => this.delay(op, id);
    const id = spec.modelId;
    const size = this.#specs.get(id)!.gpuBytes;
    this.started.set(id, (this.started.get(id) ?? 0) + 1);
    let device: SessionDevice | "none" = "none";
    let dead: string | null = null;
    const exitCallbacks: Array<(reason: string) => void> = [];
    let resolveExited!: (reason: string) => void;
    const exited = new Promise<string>((resolve) => (resolveExited = resolve));
    const status = (): WorkerStatus => ({
      device,
      gpuBuffers: device === "gpu" ? 1 : 0,
      gpuBytes: device === "gpu" ? size : 0,
      gpuPeakBytes: device === "gpu" ? size : 0,
      rssBytes: 0,
      inputs: [],
      outputs: [],
      build: "wasm",
      engine: device === "gpu" ? "webgpu" : device === "cpu" ? "wasm" : "none",
      ramBytes: device === "cpu" ? size : 0,
    });
    const ok = <K extends RequestKind>(type: K, fields: Replies[K]): OkReply<K> =>
      ({
        id: 0,
        type,
        ok: true,
        status: status(),
        ms: 0,
        ...fields,
      }) as unknown as OkReply<K>; // the common fields are the same for every kind
    const fail = <K extends RequestKind>(
      type: K,
      code: "oom" | "not_loaded",
      message: string,
    ): ErrorReply<K> => ({
      id: 0,
      type,
      ok: false,
      status: status(),
      error: { code, message },
      ms: 0,
    });
    const alive = () => {
      if (dead !== null) throw new Error(`worker double ${id} is gone: ${dead}`);
    };
    const handle: WorkerHandle = {
      get lastStatus() {
        return status();
      },
      set lastStatus(_value: WorkerStatus) {
        // The double's status is derived; the manager never sets it.
      },
      get alive() {
        return dead === null;
      },
      exited,
      async load(to: SessionDevice) {
        const call: SimCall = { op: "load", id, device: to };
        calls.push(call);
        await delay("load");
        alive();
        if (to === "gpu") {
          if (take(failLoads)) {
            call.result = "oom";
            return fail("load", "oom", `${id}: simulated out-of-memory on a GPU load`);
          }
          if (size > free()) {
            call.result = "oom";
            return fail("load", "oom", `${id}: needs ${size} B, the device has ${free()} B free`);
          }
        }
        device = to;
        call.result = to;
        return ok("load", {});
      },
      async run(_input: RunInput | Record<string, WireTensor>) {
        const call: SimCall = { op: "run", id, device: device === "none" ? undefined : device };
        calls.push(call);
        await delay("run");
        alive();
        if (device === "gpu" && take(failRuns)) {
          call.result = "oom";
          return fail("run", "oom", `${id}: simulated out-of-memory while running`);
        }
        call.result = device;
        return ok("run", { output: { kind: "tensors", tensors: {} } });
      },
      async offload() {
        calls.push({ op: "offload", id, result: "cpu" });
        await delay("offload");
        alive();
        device = "cpu";
        return ok("offload", {});
      },
      async rehydrate() {
        const reply = await handle.load("gpu");
        return { ...reply, type: "rehydrate" as const };
      },
      async unload() {
        calls.push({ op: "unload", id, result: "none" });
        await delay("unload");
        device = "none";
        return ok("unload", {});
      },
      parity: () =>
        Promise.resolve(ok("parity", { parityDeferred: "worker doubles run no probe" })),
      onExit(cb: (reason: string) => void) {
        if (dead !== null) cb(dead);
        else exitCallbacks.push(cb);
      },
      terminate(reason = "terminated") {
        if (dead !== null) return;
        dead = reason;
        device = "none";
        for (const cb of exitCallbacks.splice(0)) cb(reason);
        resolveExited(reason);
      },
    };
    return handle;
  }
}
