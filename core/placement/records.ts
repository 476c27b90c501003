/**
 * The scheduler's record of each pipeline (ollama's `runnerRef`): activity, last use, pin,
 * keep-alive, leak and why it is on the CPU, everything about a pipeline that is not the
 * worker's. One record per pipeline; an unknown id is refused here, naming the known ones.
 * @module
 */
import type { TimerHandle } from "../clock.ts";
import { PipelineError } from "../pipelines/errors.ts";
import type { PlacedPipeline } from "./budget.ts";
import type { HostView, PipelineHost } from "./host.ts";

/** One pipeline's record: everything about it that is not the worker's. */
export interface PipelineRecord {
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

/** Every pipeline's record, keyed by id, beside the host's live view of it. */
export class Records {
  readonly #host: Pick<PipelineHost, "ids" | "view">;
  readonly #records = new Map<string, PipelineRecord>();

  constructor(host: Pick<PipelineHost, "ids" | "view">) {
    this.#host = host;
    for (const id of host.ids()) this.#records.set(id, newRecord(id));
  }

  /** The record of `id` (made for a pipeline the host took on after start); unknown_model otherwise. */
  get(id: string): PipelineRecord {
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

  /** The host's view of `id`; unknown_model for an id neither knows. */
  view(id: string): HostView {
    const view = this.#host.view(id);
    if (!view) this.get(id); // throws unknown_model
    return view!;
  }

  /** Every record, in the order they were made. */
  values(): IterableIterator<PipelineRecord> {
    return this.#records.values();
  }
}

/** A record of a pipeline nothing has touched yet. */
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

/** A pipeline as the budget sees it: the host's placement and bytes, the record's use and pin. */
export function placed(record: PipelineRecord, view: HostView): PlacedPipeline {
  return {
    id: record.id,
    placement: view.placement,
    gpuBytes: view.gpuBytes,
    lastUsedAt: record.lastUsedAt,
    activeCount: record.activeCount,
    pinned: record.pinned,
  };
}
