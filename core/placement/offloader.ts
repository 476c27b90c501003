/**
 * The VramOffloader: Headroom's placement policy. It keeps free VRAM above the
 * headroom by moving idle GPU pipelines to the CPU, least recently used first and
 * only as many bytes as the shortfall needs; brings a pipeline to the GPU on demand;
 * retries out-of-memory failures by evicting one more idle pipeline (at most 3 times)
 * before serving on the CPU or refusing, as configured. Active and pinned pipelines
 * are never evicted. Every decision passes through one serialized queue (two requests
 * never count the same free bytes) and is logged with its reason.
 * @module
 */
import type { EventLog } from "../events.ts";
import type { OffloaderStatus } from "../types.ts";
import { PipelineError } from "../pipelines/errors.ts";
import { formatBytes } from "../units.ts";
import type { RunInput, RunOutput, SessionDevice } from "../../workers/protocol.ts";
import {
  availableBytes,
  canFitChain,
  chooseEvictions,
  estimateModelVram,
  type EvictionCandidate,
  type FitResult,
  type GpuState,
  type ModelFootprint,
  type PlacedPipeline,
} from "./budget.ts";

/** Most out-of-memory retries (each after evicting one more idle pipeline). */
export const MAX_OOM_RETRIES = 3;

/** One pipeline as the policy reads it from its target. */
export interface PlacementView {
  id: string;
  placement: "gpu" | "cpu" | "none";
  gpuBytes: number;
  pinned: boolean;
  gpuMismatch: boolean;
}

/** What the offloader moves: the PipelineManager, or a model of it in tests. */
export interface PlacementTarget {
  /** Each pipeline's placement and tracked GPU bytes. */
  placements(): PlacementView[];
  /**
   * One pipeline's view, undefined when unknown. Optional: a target that can look one
   * up directly spares the policy listing every pipeline on its per-request fast path.
   */
  placement?(id: string): PlacementView | undefined;
  load(id: string, device: SessionDevice): Promise<unknown>;
  offload(id: string): Promise<unknown>;
  run(
    id: string,
    input: RunInput,
    options: { device: SessionDevice },
  ): Promise<{ output: RunOutput; ms: number; device: SessionDevice }>;
}

/** Where the device figures come from (the monitor, or a model of it in tests). */
export interface DeviceView {
  /** False when no GPU is usable. */
  available(): boolean;
  /** A fresh reading of device 0's free bytes and total. */
  read(): { freeBytes: number; totalBytes: number };
}

/** How the offloader is set up. */
export interface OffloaderOptions {
  target: PlacementTarget;
  device: DeviceView;
  events: EventLog;
  /** Headroom's allowance in bytes for a device total (a fixed budget, a share, or the total). */
  budgetFor: (totalBytes: number) => number;
  /** Headroom to keep for a budget (see effectiveHeadroom). */
  headroomFor: (budgetBytes: number) => number;
  /** What a model's file weighs and what was measured of it. */
  footprint: (id: string) => ModelFootprint;
  onInsufficientVram: "cpu" | "reject";
  /** Most requests waiting or running on one pipeline; past it `run` refuses with queue_full (429). */
  queueLimit?: number;
  now?: () => number;
}

/** One pipeline's record in the policy. */
interface Activity {
  activeCount: number;
  lastUsedAt: number;
}

/** The placement policy. */
export class VramOffloader {
  readonly #options: OffloaderOptions;
  readonly #records = new Map<string, Activity>();
  #queue: Promise<unknown> = Promise.resolve();
  #now: () => number;

  constructor(options: OffloaderOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  #record(id: string): Activity {
    let record = this.#records.get(id);
    if (!record) {
      record = { activeCount: 0, lastUsedAt: 0 };
      this.#records.set(id, record);
    }
    return record;
  }

  /** One pipeline's view from the target. */
  #view(id: string): PlacementView | undefined {
    const { target } = this.#options;
    return target.placement ? target.placement(id) : target.placements().find((p) => p.id === id);
  }

  /** Marks a request or stream as started on `id`: an active pipeline is never evicted. */
  markActive(id: string): void {
    const record = this.#record(id);
    record.activeCount++;
    record.lastUsedAt = this.#now();
  }

  /** Marks a request or stream on `id` as finished. */
  markIdle(id: string): void {
    const record = this.#record(id);
    record.activeCount = Math.max(0, record.activeCount - 1);
    record.lastUsedAt = this.#now();
  }

  /** The GPU as the budget sees it now (a fresh device reading). */
  state(): GpuState {
    const { device, target, budgetFor, headroomFor } = this.#options;
    const now = this.#now();
    const usable = device.available();
    const { freeBytes, totalBytes } = usable ? device.read() : { freeBytes: 0, totalBytes: 0 };
    const budgetBytes = budgetFor(totalBytes);
    const views = target.placements();
    const pipelines: PlacedPipeline[] = new Array(views.length);
    for (let i = 0; i < views.length; i++) {
      const p = views[i];
      const record = this.#records.get(p.id); // a pipeline never marked: idle, never used
      pipelines[i] = {
        id: p.id,
        placement: p.placement,
        gpuBytes: p.gpuBytes,
        lastUsedAt: record?.lastUsedAt ?? 0,
        activeCount: record?.activeCount ?? 0,
        pinned: p.pinned,
      };
    }
    return {
      available: usable,
      deviceFreeBytes: freeBytes,
      budgetBytes,
      headroomBytes: headroomFor(budgetBytes),
      now,
      pipelines,
    };
  }

  /** The pre-flight check for a chain, changing nothing. */
  check(ids: string[]): FitResult {
    return canFitChain(ids.map((id) => this.#options.footprint(id)), this.state());
  }

  /** The policy's figures, for the API. */
  status(): OffloaderStatus {
    const state = this.state();
    return {
      budgetBytes: state.budgetBytes,
      headroomBytes: state.headroomBytes,
      availableBytes: availableBytes(state),
      onInsufficientVram: this.#options.onInsufficientVram,
      pipelines: state.pipelines.map((p) => ({
        id: p.id,
        activeCount: p.activeCount,
        pinned: p.pinned,
        lastUsedAt: p.lastUsedAt,
        idleMs: p.lastUsedAt ? Math.max(0, state.now - p.lastUsedAt) : 0,
      })),
    };
  }

  /** Runs `op` after every earlier decision has finished: one decision at a time. */
  #serialize<T>(op: () => Promise<T>): Promise<T> {
    const result = this.#queue.then(op, op);
    this.#queue = result.catch(() => {});
    return result;
  }

  /**
   * Runs a request on `id`, placed by the policy: marked active for its duration, on
   * the GPU when it can be (making room first), else on the CPU or refused.
   */
  async run(
    id: string,
    input: RunInput,
  ): Promise<{ output: RunOutput; ms: number; device: SessionDevice }> {
    const limit = this.#options.queueLimit;
    const waiting = this.#record(id).activeCount;
    if (limit !== undefined && waiting >= limit) {
      throw new PipelineError(
        "queue_full",
        `Pipeline "${id}" has ${waiting} requests waiting or running (limit ${limit}); retry shortly`,
      );
    }
    this.markActive(id);
    try {
      let device = await this.ensurePlaced(id);
      for (let attempt = 1;; attempt++) {
        try {
          // The target runs a loaded pipeline where it is. If something unloaded it since
          // it was placed (a switch), it reloads on the CPU: the GPU is reached only
          // through the policy's budget check, never around it.
          return await this.#options.target.run(id, input, { device: "cpu" });
        } catch (error) {
          if (!(error instanceof PipelineError && error.code === "oom") || device === "cpu") {
            throw error;
          }
          // Out of memory while running: make room once more, or fall back.
          device = await this.#serialize(() => this.#afterOom(id, attempt, error));
        }
      }
    } finally {
      this.markIdle(id);
    }
  }

  /** Brings `id` to the GPU if the policy allows (else the CPU); answers where it is. */
  ensurePlaced(id: string): Promise<SessionDevice> {
    // Already on the GPU: no decision to make (an active pipeline is never evicted).
    const current = this.#view(id);
    if (current?.placement === "gpu") return Promise.resolve("gpu");
    return this.#serialize(() => this.#place(id));
  }

  /** Brings `id` to the GPU, making room first; falls back or refuses per configuration. */
  ensureOnGpu(id: string): Promise<SessionDevice> {
    return this.ensurePlaced(id);
  }

  async #place(id: string): Promise<SessionDevice> {
    const { target, events } = this.#options;
    const current = this.#view(id);
    if (!current) throw new PipelineError("unknown_model", `Unknown model "${id}"`);
    if (current.placement === "gpu") return "gpu";
    const state = this.state();
    if (!state.available) {
      if (current.placement !== "cpu") await target.load(id, "cpu");
      return "cpu";
    }
    if (current.gpuMismatch) {
      if (current.placement !== "cpu") await target.load(id, "cpu");
      return "cpu";
    }
    const estimate = estimateModelVram(this.#options.footprint(id));
    const exclude = new Set([id]);
    let room = state;
    for (;;) {
      const shortfall = estimate.bytes - availableBytes(room);
      const evictions = chooseEvictions(room, shortfall, exclude);
      const freed = evictions.reduce((sum, e) => sum + e.bytes, 0);
      if (shortfall > 0 && freed < shortfall) {
        return await this.#insufficient(
          id,
          `${id} needs ${formatBytes(estimate.bytes)} (${estimate.basis} estimate); ${
            formatBytes(Math.max(0, availableBytes(room)))
          } free above the ${
            formatBytes(room.headroomBytes)
          } headroom, and evicting every idle pipeline frees only ${formatBytes(freed)}`,
        );
      }
      const moved = await this.#evict(evictions, `to make room for ${id}`, "make_room");
      if (moved === evictions.length) break;
      // A candidate became active or pinned while an earlier one moved, and stayed:
      // count the room again before loading (it ends: a skipped one is not chosen again).
      room = this.state();
    }
    for (let attempt = 1;; attempt++) {
      try {
        await target.load(id, "gpu");
        // Just placed counts as just used: it must not be the next eviction's first pick.
        this.#record(id).lastUsedAt = this.#now();
        events.emit({
          kind: "info",
          pipeline: id,
          message: `placed ${id} on the GPU (${estimate.basis} estimate ${
            formatBytes(estimate.bytes)
          })`,
        });
        return "gpu";
      } catch (error) {
        if (!(error instanceof PipelineError && error.code === "oom")) throw error;
        const next = await this.#afterOom(id, attempt, error);
        if (next === "cpu") return "cpu";
      }
    }
  }

  /**
   * After an out-of-memory failure on `id`: evicts one more idle pipeline and answers
   * "gpu" to retry, or, past {@link MAX_OOM_RETRIES} or with nothing left to evict,
   * falls back per configuration.
   */
  async #afterOom(id: string, attempt: number, error: PipelineError): Promise<SessionDevice> {
    const { events } = this.#options;
    events.emit({
      kind: "oom",
      pipeline: id,
      message: `${id}: out of GPU memory (attempt ${attempt}): ${error.message}`,
    });
    if (attempt > MAX_OOM_RETRIES) {
      return await this.#insufficient(id, `${id} ran out of GPU memory ${attempt} times`);
    }
    const more = chooseEvictions(this.state(), 1, new Set([id]));
    if (more.length === 0) {
      return await this.#insufficient(
        id,
        `${id} ran out of GPU memory and no idle pipeline is left to evict`,
      );
    }
    await this.#evict(more, `after an out-of-memory error on ${id}`, "oom");
    return "gpu";
  }

  /** No room: serve on the CPU, or refuse, as configured. */
  async #insufficient(id: string, why: string): Promise<SessionDevice> {
    const { target, events, onInsufficientVram } = this.#options;
    if (onInsufficientVram === "reject") {
      events.emit({ kind: "info", pipeline: id, message: `refused ${id} on the GPU: ${why}` });
      throw new PipelineError(
        "oom",
        `Not enough GPU memory: ${why}. Free VRAM, or set HEADROOM_ON_INSUFFICIENT_VRAM=cpu.`,
      );
    }
    const current = this.#view(id);
    if (current?.placement === "gpu") await target.offload(id);
    else if (current?.placement !== "cpu") await target.load(id, "cpu");
    events.emit({ kind: "info", pipeline: id, message: `${id} serves on the CPU: ${why}` });
    return "cpu";
  }

  /**
   * Moves each candidate to the CPU, logging why; answers how many moved. A candidate
   * that became active or pinned, or left the GPU, while an earlier one moved, stays.
   */
  async #evict(
    candidates: EvictionCandidate[],
    reason: string,
    reasonCode: "make_room" | "oom" | "headroom",
  ): Promise<number> {
    const { target, events } = this.#options;
    let moved = 0;
    for (const [i, candidate] of candidates.entries()) {
      const record = this.#record(candidate.id);
      if (record.activeCount > 0) continue; // became busy meanwhile
      if (i > 0) {
        const now = this.#view(candidate.id);
        if (now?.placement !== "gpu" || now.pinned) continue; // pinned or moved meanwhile
      }
      try {
        await target.offload(candidate.id);
      } catch (error) {
        // Unloaded meanwhile (a switch queued before this offload): its memory is free already.
        if (error instanceof PipelineError && error.code === "not_loaded") continue;
        throw error;
      }
      moved++;
      events.emit({
        kind: "eviction",
        pipeline: candidate.id,
        message: `evicted ${candidate.id} (${
          candidate.idleMs === null ? "never used" : `idle ${Math.round(candidate.idleMs / 1000)} s`
        }, ${formatBytes(candidate.bytes)}) ${reason}`,
        reason: reasonCode,
      });
    }
    return moved;
  }

  /**
   * Restores the headroom when something else took VRAM (another process, a growing
   * pipeline): evicts idle pipelines, least recently used first, for the deficit only.
   */
  enforceHeadroom(): Promise<number> {
    return this.#serialize(async () => {
      const state = this.state();
      if (!state.available) return 0;
      const deficit = -availableBytes(state);
      if (deficit <= 0) return 0;
      const evictions = chooseEvictions(state, deficit, new Set());
      return await this.#evict(
        evictions,
        `to restore the headroom (free ${
          formatBytes(Math.min(state.deviceFreeBytes, state.budgetBytes))
        }, keeping ${formatBytes(state.headroomBytes)})`,
        "headroom",
      );
    });
  }
}
