/**
 * The report view: what the host shows of a pipeline, only what it owns. {@link viewOf}
 * is the scheduler's cheap per-request read; {@link reportOf} the host's part of the API's
 * row, to which the scheduler adds its record's fields (pin, last use, leak, keep-alive).
 * @module
 */
import type { CatalogModel } from "../../core/models/catalog.ts";
import type { HostView } from "../../core/placement/types.ts";
import type { ProfileStore } from "../../core/store/profiles.ts";
import type { BatchFigures, HostReport, SessionEngineName } from "../../core/types.ts";
import type { WorkerStatus } from "../../core/pipelines/protocol.ts";
import { batchConfigOf, liveStatus, type Pipeline, sessionBatches } from "./pipeline.ts";
import { placementOf } from "./transitions.ts";
import { processRssBytes } from "../process_figures.ts";

/** One pipeline's live view (a few field reads). */
export function viewOf(p: Pipeline): HostView {
  const status = liveStatus(p);
  return {
    id: p.model.id,
    state: p.state,
    placement: placementOf(p.state),
    gpuBytes: status?.gpuBytes ?? 0,
    gpuPeakBytes: status?.gpuPeakBytes ?? 0,
    gpuMismatch: p.gpuMismatch,
  };
}

/**
 * One pipeline as the API shows it: live figures while its worker lives, else the last
 * transition and the saved profiles; the catalog's inputs and outputs until a session
 * says what they are.
 */
export function reportOf(p: Pipeline, profiles: ProfileStore | undefined): HostReport {
  const status = liveStatus(p);
  const gpuProfile = profiles?.get(p.model.id, "gpu") ?? null;
  const cpuProfile = profiles?.get(p.model.id, "cpu") ?? null;
  const catalogInfo = (list: CatalogModel["inputs"]) =>
    (list ?? []).map((t) => ({ name: t.name, type: t.type ?? null, dims: t.dims ?? [] }));
  return {
    id: p.model.id,
    name: p.model.name,
    tags: p.model.tags,
    plugin: p.model.pluginUrl !== null,
    state: p.state,
    placement: placementOf(p.state),
    gpuBytes: status?.gpuBytes ?? 0,
    gpuBuffers: status?.gpuBuffers ?? 0,
    gpuPeakBytes: status?.gpuPeakBytes ?? 0,
    rssBytes: status?.rssBytes ?? 0,
    ramBytes: status?.ramBytes ?? 0,
    pluginRssBytes: processRssBytes(p.client?.alive ? p.client.pluginPid : null),
    engine: status ? engineOf(status) : null,
    modelBytes: p.files?.totalBytes ?? null,
    error: p.error,
    lastTransition: p.lastTransition,
    gpuMismatch: p.gpuMismatch,
    display: status
      ? "loaded"
      : (p.lastTransition || gpuProfile || cpuProfile)
      ? "unloaded"
      : "never",
    gpuProfile,
    cpuProfile,
    inputs: status?.inputs.length ? status.inputs : catalogInfo(p.model.inputs),
    outputs: status?.outputs.length ? status.outputs : catalogInfo(p.model.outputs),
    batch: batchFiguresOf(p),
  };
}

/** The row's `batch`: the models file's settings with what batching did (see manager/batcher.ts). */
function batchFiguresOf(p: Pipeline): BatchFigures | null {
  const config = batchConfigOf(p);
  if (!config) return null;
  const counts = p.batch;
  return {
    max: config.max,
    delayMs: config.delayMs,
    capRows: counts.capRows,
    active: sessionBatches(p),
    largestRows: counts.largestRows,
    runs: counts.runs,
    rows: counts.rows,
    runsByRows: Object.fromEntries([...counts.runsByRows].map(([k, v]) => [String(k), v])),
  };
}

/** The engine of a worker's open session, or null. */
function engineOf(status: WorkerStatus): SessionEngineName | null {
  return status.engine === "none" ? null : status.engine;
}
