/**
 * A model row for the dashboard's unit tests: a never-loaded model with every field of
 * {@link ModelRow} set, and the test's overrides on top.
 * @module
 */
import type { ModelRow } from "../core/types.ts";

/** A never-loaded model "m" (no actions, taken at 0) with `over` applied. */
export function modelRow(over: Partial<ModelRow> = {}): ModelRow {
  return {
    id: "m",
    name: "m",
    tags: [],
    plugin: false,
    state: "unloaded",
    placement: "none",
    gpuBytes: 0,
    gpuBuffers: 0,
    gpuPeakBytes: 0,
    rssBytes: 0,
    ramBytes: 0,
    pluginRssBytes: null,
    engine: null,
    modelBytes: null,
    error: null,
    lastTransition: null,
    gpuMismatch: null,
    lastUsedAt: null,
    display: "never",
    gpuProfile: null,
    cpuProfile: null,
    leak: null,
    pinned: false,
    inputs: [],
    outputs: [],
    batch: null,
    keepAliveDeadline: null,
    cpuReason: null,
    activeCount: 0,
    idleMs: 0,
    idleAction: "offload",
    actions: [],
    takenAt: 0,
    ...over,
  };
}
