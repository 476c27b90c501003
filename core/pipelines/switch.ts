/**
 * Model switching (exclusive mode), as llama-swap and the status page expect: unload
 * whatever is loaded, then load the requested model alone, and report what it took.
 * @module
 */
import type { Services } from "../http/context.ts";
import { measureLoad } from "./measure.ts";

/** The answer of `POST /v1/models/switch`. */
export interface SwitchResult {
  status: "success";
  model: string;
  /** Where the model ended up. */
  device: "gpu" | "cpu" | "none";
  /** VRAM it took: device used after − baseline before (MB = 10^6 bytes), or tracked bytes without a driver. */
  vram_mb: number;
  /** RAM its session holds (weights for the native engine, wasm memory for wasm), in MB; never negative. */
  ram_mb: number;
  /** The whole process's RSS after the switch, in MB (every pipeline shares it). */
  rss_mb: number;
  /** The engine it runs on ("native", "wasm", "webgpu"). */
  engine: string | null;
  /** Models unloaded to make it exclusive. */
  unloaded: string[];
  load_ms: number;
}

let switching: Promise<unknown> = Promise.resolve();

/**
 * Unloads every other loaded model, then loads `id` and measures it. Switches are
 * serialized: two at once would each count the other's memory.
 */
export function switchModel(services: Services, id: string): Promise<SwitchResult> {
  const run = async (): Promise<SwitchResult> => {
    const { manager } = services;
    manager.get(id); // unknown id → 404 before anything is unloaded
    const unloaded: string[] = [];
    for (const model of manager.list()) {
      if (model.id !== id && model.state !== "unloaded") {
        await manager.unload(model.id);
        unloaded.push(model.id);
      }
    }
    if (manager.get(id).state !== "unloaded") await manager.unload(id);
    const measured = await measureLoad(services, id, manager.defaultDevice);
    return {
      status: "success",
      model: id,
      device: measured.placement,
      vram_mb: round(Math.max(0, measured.vramBytes) / 1e6),
      ram_mb: round(Math.max(0, measured.ramBytes) / 1e6),
      rss_mb: round(measured.rssBytes / 1e6),
      engine: measured.engine,
      unloaded,
      load_ms: Math.round(measured.ms),
    };
  };
  const result = switching.then(run, run);
  switching = result.catch(() => {});
  return result;
}

function round(value: number): number {
  return Math.round(value * 10) / 10;
}
