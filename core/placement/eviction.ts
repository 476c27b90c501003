/**
 * Eviction: where the scheduler decides which pipelines leave the GPU. Idle, unpinned
 * pipelines move to the CPU, least recently used first and only for the shortfall
 * (`chooseEvictions` in budget.ts): to make room for a pipeline, to restore the headroom
 * when something else took VRAM, or one more after an out-of-memory error (at most
 * {@link MAX_OOM_RETRIES} times, then the CPU or a refusal). Active and pinned pipelines
 * are never evicted. Everything here runs inside a decision.
 * @module
 */
import { PipelineError } from "../pipelines/errors.ts";
import type { SessionDevice } from "../pipelines/protocol.ts";
import type { EvictionReason } from "../types.ts";
import { formatBytes } from "../units.ts";
import {
  availableBytes,
  chooseEvictions,
  type EvictionCandidate,
  type ModelEstimate,
} from "./budget.ts";
import type { DeviceReading } from "./device.ts";
import type { GpuAccount } from "./gpu_state.ts";
import type { PipelineHost } from "./host.ts";
import type { Moves } from "./moves.ts";
import { type Emit, evicted, outOfMemory } from "./placement_events.ts";
import type { Records } from "./records.ts";
import type { ReleaseWatch } from "./release_watch.ts";

/** Most out-of-memory retries (each after evicting one more idle pipeline). */
export const MAX_OOM_RETRIES = 3;

/** What eviction reads and moves. */
export interface EvictionOptions {
  host: Pick<PipelineHost, "view">;
  records: Records;
  account: GpuAccount;
  moves: Moves;
  releases: ReleaseWatch;
  emit: Emit;
}

/** The eviction decisions. */
export class Eviction {
  readonly #o: EvictionOptions;

  constructor(options: EvictionOptions) {
    this.#o = options;
  }

  /**
   * Makes room for `estimate` of `id` on the GPU, evicting and waiting for the releases
   * to show; answers "gpu" when there is room now, or what the no-room rule answered
   * ("cpu") when evicting every idle pipeline would not be enough.
   */
  async makeRoom(
    id: string,
    estimate: ModelEstimate,
    reading: DeviceReading,
    trigger: string,
  ): Promise<SessionDevice> {
    const { account, moves, releases } = this.#o;
    const exclude = new Set([id]);
    let room = account.state(reading, true);
    for (;;) {
      const available = availableBytes(room);
      const shortfall = estimate.bytes - available;
      // On a driver error the figures are old: evict nothing on them.
      const evictions = reading.state === "error" ? [] : chooseEvictions(room, shortfall, exclude);
      const freed = evictions.reduce((sum, e) => sum + e.bytes, 0);
      if (shortfall > 0 && freed < shortfall) {
        return await moves.noRoom(
          id,
          `${id} needs ${formatBytes(estimate.bytes)} (${estimate.basis} estimate); ${
            formatBytes(Math.max(0, available))
          } free above the ${
            formatBytes(room.headroomBytes)
          } headroom, and evicting every idle pipeline frees only ${formatBytes(freed)}`,
        );
      }
      const moved = await this.evict(evictions, `to make room for ${id}`, trigger, "make_room");
      if (moved.length > 0) await releases.settled(moved);
      if (moved.length === evictions.length) return "gpu";
      room = account.state(account.read(true), true);
    }
  }

  /**
   * After an out-of-memory failure on `id`: evicts one more idle pipeline and answers
   * "gpu" to retry, or, past {@link MAX_OOM_RETRIES} or with nothing left to evict,
   * falls back per configuration.
   */
  async afterOom(id: string, attempt: number, error: PipelineError): Promise<SessionDevice> {
    const { account, moves, releases } = this.#o;
    this.#o.emit(outOfMemory(id, attempt, error));
    if (attempt > MAX_OOM_RETRIES) {
      return await moves.noRoom(id, `${id} ran out of GPU memory ${attempt} times`);
    }
    const more = chooseEvictions(account.state(account.read(true), true), 1, new Set([id]));
    if (more.length === 0) {
      return await moves.noRoom(
        id,
        `${id} ran out of GPU memory and no idle pipeline is left to evict`,
      );
    }
    const moved = await this.evict(more, `after an out-of-memory error on ${id}`, "oom", "oom");
    await releases.settled(moved);
    return "gpu";
  }

  /**
   * Restores the headroom when something else took VRAM: evicts idle pipelines for the
   * deficit only, answering how many moved. Releases the driver has not shown yet count
   * as free; on a lost device or a driver error nothing is evicted.
   */
  async restoreHeadroom(): Promise<number> {
    const { account } = this.#o;
    const reading = account.read(false);
    if (reading.state !== "ok") return 0;
    const state = account.state(reading, true);
    const deficit = -availableBytes(state);
    if (deficit <= 0) return 0;
    const evictions = chooseEvictions(state, deficit, new Set());
    const moved = await this.evict(
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
   * Moves each candidate to the CPU, logging why; answers the ids that moved. A candidate
   * that became active or pinned, or left the GPU, while an earlier one moved, stays.
   */
  async evict(
    candidates: EvictionCandidate[],
    reason: string,
    trigger: string,
    reasonCode: EvictionReason,
  ): Promise<string[]> {
    const { records, host, moves } = this.#o;
    const moved: string[] = [];
    for (const candidate of candidates) {
      const record = records.get(candidate.id);
      if (record.activeCount > 0 || record.pinned) continue; // busy or pinned meanwhile
      if (host.view(candidate.id)?.placement !== "gpu") continue;
      try {
        await moves.offload(candidate.id, reason, trigger, false);
      } catch (error) {
        if (error instanceof PipelineError && error.code === "not_loaded") continue;
        throw error;
      }
      moved.push(candidate.id);
      this.#o.emit(evicted(candidate, reason, reasonCode, trigger));
    }
    return moved;
  }
}
