/**
 * `loaded_models` of `GET /metrics` (JSON): every model with a live session, from the
 * pipelines' live state, with the figures last measured of it (Deno KV profiles).
 * @module
 */
import type { MemoryProfile, ModelRow } from "../../core/types.ts";

/** One loaded model as `/metrics` JSON lists it. */
export interface LoadedModel {
  id: string;
  /** Where its session runs. */
  device: "gpu" | "cpu";
  state: string;
  /** Tracked GPU bytes alive in its worker now. */
  vram_bytes: number;
  /** RAM its session holds now: the API's `ramBytes` (one meaning of RAM everywhere). */
  ram_bytes: number;
  /** The process's RSS growth measured across its last load (workers share one process; null if unmeasured). */
  process_growth_bytes: number | null;
  /** Milliseconds since the epoch of its last request, or null. */
  last_used_at: number | null;
  /** What was last measured of it on each device. */
  last_known: { gpu: MemoryProfile | null; cpu: MemoryProfile | null };
}

/**
 * The process's RSS growth last measured across `model`'s load on `device`, or null: not
 * its RAM (that is the session's `ramBytes`), the whole process's change around the load.
 */
export function processGrowthBytesOf(model: ModelRow, device: "gpu" | "cpu"): number | null {
  const profile = device === "gpu" ? model.gpuProfile : model.cpuProfile;
  const transition = model.lastTransition?.kind.startsWith("load:")
    ? model.lastTransition.rssDeltaBytes
    : null;
  const measured = transition ?? profile?.rssDeltaBytes ?? null;
  return measured === null ? null : Math.max(0, measured);
}

/** The models with a session now (on the GPU or the CPU), in catalog order. */
export function loadedModels(models: ModelRow[]): LoadedModel[] {
  return models.filter((m) => m.display === "loaded" && m.placement !== "none").map((m) => {
    const device = m.placement as "gpu" | "cpu";
    return {
      id: m.id,
      device,
      state: m.state,
      vram_bytes: m.gpuBytes,
      ram_bytes: Math.max(0, m.ramBytes),
      process_growth_bytes: processGrowthBytesOf(m, device),
      last_used_at: m.lastUsedAt,
      last_known: { gpu: m.gpuProfile, cpu: m.cpuProfile },
    };
  });
}
