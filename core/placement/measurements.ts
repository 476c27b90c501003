/**
 * What switches and test loads answer: boundary types shared by the scheduler, the
 * routes, the dashboard and the load tool (written once here).
 * @module
 */
import type { SessionEngineName } from "../types.ts";
import type { SessionDevice } from "../pipelines/protocol.ts";

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
  /** RAM its sessions hold (weights for the native engine, wasm memory for wasm), in MB; never negative. */
  ram_mb: number;
  /** The whole process's RSS after the switch, in MB (every pipeline shares it). */
  rss_mb: number;
  /** The engine it runs on ("native", "wasm", "webgpu"). */
  engine: SessionEngineName | null;
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
  /**
   * RAM the pipeline's session holds after the load, never negative: the weights for the
   * native engine, the wasm memory size for onnxruntime-web (see ModelReport.ramBytes).
   */
  ramBytes: number;
  /** Process RSS after − before (whole process, every worker: noisy, may be negative). */
  rssDeltaBytes: number;
  /** Process RSS after the load. */
  rssBytes: number;
  /** The engine its session runs on. */
  engine: SessionEngineName | null;
  ms: number;
  vramBasis: "driver" | "tracked";
}

/** One progress event of a test load (NDJSON lines over HTTP, a progress bar in the terminal). */
export type TestLoadEvent =
  | { event: "started"; model: string; index: number; total: number }
  | { event: "measured"; model: string; index: number; total: number; measurement: LoadMeasurement }
  | { event: "error"; model: string; index: number; total: number; message: string }
  | { event: "done"; total: number; failed: number; ms: number };
