/**
 * What switches and test loads answer: boundary types shared by the scheduler, the
 * routes, the dashboard and the load tool (written once here).
 * @module
 */
import type { SessionDevice } from "../../workers/protocol.ts";

/** The answer of a switch. */
export interface SwitchResult {
  status: "success";
  /** The model switched to (the first of a group). */
  model: string;
  models: string[];
  /** Where it ended up. */
  device: "gpu" | "cpu" | "none";
  /** VRAM it took: device used after − before (MB = 10^6 bytes), or tracked bytes without a driver. */
  vram_mb: number;
  /** RAM it took: process RSS after − before, in MB. */
  ram_mb: number;
  /** Models unloaded to make it exclusive. */
  unloaded: string[];
  load_ms: number;
  /** True when it was loaded alone already: nothing was reloaded. */
  already_loaded: boolean;
  /** Why it is on the CPU when it is, or null. */
  reason: string | null;
}

/** What one isolated load cost. */
export interface LoadMeasurement {
  model: string;
  device: SessionDevice;
  placement: "gpu" | "cpu" | "none";
  /** Device used after − before, when a driver reports used bytes; else tracked bytes. */
  vramBytes: number;
  trackedBytes: number;
  /** Process RSS after − before. */
  ramBytes: number;
  ms: number;
  vramBasis: "driver" | "tracked";
}

/** One progress event of a test load (NDJSON lines over HTTP, a progress bar in the terminal). */
export type TestLoadEvent =
  | { event: "started"; model: string; index: number; total: number }
  | { event: "measured"; model: string; index: number; total: number; measurement: LoadMeasurement }
  | { event: "error"; model: string; index: number; total: number; message: string }
  | { event: "done"; total: number; failed: number; ms: number };
