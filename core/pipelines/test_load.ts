/**
 * Test load: loads each model (or a given list) one at a time, in isolation — every
 * other model unloaded first — measures it, unloads it, and reports progress as it
 * goes. The figures land in the saved profiles, so unloaded models show last-known sizes.
 * @module
 */
import type { Services } from "../http/context.ts";
import type { SessionDevice } from "../../workers/protocol.ts";
import { type LoadMeasurement, measureLoad } from "./measure.ts";

/** One progress event of a test load (NDJSON lines over HTTP, a progress bar in the terminal). */
export type TestLoadEvent =
  | { event: "started"; model: string; index: number; total: number }
  | { event: "measured"; model: string; index: number; total: number; measurement: LoadMeasurement }
  | { event: "error"; model: string; index: number; total: number; message: string }
  | { event: "done"; total: number; failed: number; ms: number };

let running = false;

/** True while a test load runs (only one at a time). */
export function testLoadRunning(): boolean {
  return running;
}

/**
 * Runs the test load, calling `onEvent` for each step. Throws if one is already
 * running. Models that were loaded before stay unloaded afterwards: the point is a
 * clean measurement of each.
 */
export async function runTestLoad(
  services: Services,
  ids: string[],
  device: SessionDevice,
  onEvent: (event: TestLoadEvent) => void | Promise<void>,
): Promise<{ failed: number }> {
  if (running) throw new Error("A test load is already running; wait for it to finish");
  running = true;
  const { manager } = services;
  const started = performance.now();
  let failed = 0;
  try {
    for (const [index, id] of ids.entries()) {
      const total = ids.length;
      await onEvent({ event: "started", model: id, index, total });
      try {
        for (const model of manager.list()) {
          if (model.state !== "unloaded") await manager.unload(model.id);
        }
        const measurement = await measureLoad(services, id, device);
        await manager.unload(id);
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
    await onEvent({ event: "done", total: ids.length, failed, ms: performance.now() - started });
    return { failed };
  } finally {
    running = false;
  }
}
