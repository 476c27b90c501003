/**
 * The moves a decision makes on the host, inside the scheduler's serial queue: load,
 * offload, unload, serve on the CPU, and the answer when there is no room (the CPU or a
 * refusal, as configured). Each move is logged with its reason and each release is
 * handed to the release watch; nothing here chooses what to move.
 * @module
 */
import { PipelineError } from "../pipelines/errors.ts";
import type { SessionDevice } from "../pipelines/protocol.ts";
import type { DeviceReading } from "./device.ts";
import type { GpuAccount } from "./gpu_state.ts";
import type { HostView, PipelineHost } from "./host.ts";
import {
  type Emit,
  loadFailed,
  movedToCpu,
  refusedGpu,
  servesOnCpu,
  unloaded,
} from "./placement_events.ts";
import type { PipelineRecord, Records } from "./records.ts";
import type { ReleaseWatch } from "./release_watch.ts";
import { RELEASE_CHECK_MIN_BYTES } from "./releases.ts";

/** What the moves drive and read. */
export interface MovesOptions {
  host: Pick<PipelineHost, "load" | "offload" | "unload" | "view">;
  records: Records;
  account: GpuAccount;
  releases: ReleaseWatch;
  emit: Emit;
  onInsufficientVram: "cpu" | "reject";
}

/** Host moves made inside a decision. */
export class Moves {
  readonly #o: MovesOptions;

  constructor(options: MovesOptions) {
    this.#o = options;
  }

  /** Loads `id` on `device` through the host; a failure other than memory or WebGPU is logged. */
  async load(id: string, device: SessionDevice): Promise<void> {
    try {
      await this.#o.host.load(id, device);
    } catch (error) {
      if (
        !(error instanceof PipelineError && (error.code === "oom" || error.code === "no_webgpu"))
      ) {
        this.#o.emit(loadFailed(id, device, error as Error));
      }
      throw error;
    }
  }

  /** GPU → CPU, counting the released bytes until the driver shows them. */
  async offload(id: string, reason: string, trigger: string, log = true): Promise<void> {
    const before = this.#o.account.read(true);
    const transition = await this.#o.host.offload(id);
    this.#o.releases.track(id, transition.releasedBytes, before);
    // An explicit request is logged by the host's transition event; other reasons are news.
    if (log && transition.kind !== "none" && reason !== "requested") {
      this.#o.emit(movedToCpu(id, reason, transition.releasedBytes, trigger));
    }
  }

  /** Releases the session and ends the worker, counting the released bytes until the driver shows them. */
  async unload(id: string, reason: string, trigger: string): Promise<void> {
    const before = this.#o.account.read(true);
    const transition = await this.#o.host.unload(id);
    this.#o.releases.track(id, transition.releasedBytes, before);
    this.#o.records.get(id).cpuReason = null;
    if (transition.kind !== "none" && reason !== "requested") {
      this.#o.emit(unloaded(id, reason, transition.releasedBytes, trigger));
    }
  }

  /** Serves `id` on the CPU (moving or loading it there), recording and logging why. */
  async toCpu(
    id: string,
    view: HostView,
    why: string,
    trigger = "policy",
  ): Promise<SessionDevice> {
    if (view.placement === "gpu") await this.offload(id, why, "policy");
    else if (view.placement !== "cpu") await this.load(id, "cpu");
    this.#o.records.get(id).cpuReason = why;
    this.#o.emit(servesOnCpu(id, why, trigger));
    return "cpu";
  }

  /** No room on the GPU for `id`: serve on the CPU, or refuse (oom), as configured. */
  async noRoom(id: string, why: string): Promise<SessionDevice> {
    if (this.#o.onInsufficientVram === "reject") {
      this.#o.emit(refusedGpu(id, why));
      throw new PipelineError(
        "oom",
        `Not enough GPU memory: ${why}. Free VRAM, or set HEADROOM_ON_INSUFFICIENT_VRAM=cpu.`,
      );
    }
    return await this.toCpu(id, this.#o.records.view(id), why);
  }

  /** After a GPU load: did the driver's free figure fall by at least half the bytes tracked? */
  noteLoadSeen(record: PipelineRecord, before: DeviceReading): void {
    const bytes = this.#o.host.view(record.id)?.gpuBytes ?? 0;
    if (!before.confirmsReleases || before.state !== "ok" || bytes < RELEASE_CHECK_MIN_BYTES) {
      return;
    }
    const after = this.#o.account.read(true);
    if (after.state !== "ok") return;
    record.driverSeesLoads = before.freeBytes - after.freeBytes >= bytes / 2;
  }
}
