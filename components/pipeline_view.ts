/**
 * How the pipelines table reads a model: its placement dot, the figures to show (live
 * while loaded, last-known while unloaded, none before the first load), its idle time
 * and flags. Also how a snapshot or a test load's measurement updates a held model.
 * Pure functions (no DOM), shared by the island and its tests.
 * @module
 */
import type {
  MemoryProfile,
  ModelReport,
  OffloaderStatus,
  PipelineReport,
  PipelineState,
} from "../core/types.ts";
import type { LoadMeasurement } from "../core/placement/measurements.ts";
import { formatAge, formatBytes } from "./vram_format.ts";

/**
 * The placement dot: green = on the GPU and serving, amber = on the GPU and idle, gray
 * = on the CPU, hollow = unloaded; moving while it changes place, red when it failed.
 */
export type Indicator = "active" | "idle" | "cpu" | "unloaded" | "moving" | "failed";

/** One figure cell: its text, whether it is live, last-known or absent, and its tooltip. */
export interface Figure {
  text: string;
  kind: "live" | "last" | "none";
  title: string;
}

/** The offloader's view of one pipeline, as the report carries it. */
export type Activity = OffloaderStatus["pipelines"][number];

/** Everything a row shows. */
export interface RowView {
  indicator: Indicator;
  /** The dot's words (for screen readers and its tooltip). */
  indicatorLabel: string;
  stateLabel: string;
  /** The engine its session runs on ("native", "wasm", "webgpu"), or "" without one. */
  engine: string;
  vram: Figure;
  ram: Figure;
  loadTime: Figure;
  /** "serving", "12 s", "3 min", or "—" when not loaded. */
  idle: string;
  /** Keep-alive's countdown ("offload in 4 min", "unload in 30 s"), or null when none runs. */
  keepAlive: string | null;
  loaded: boolean;
}

const STATE_LABELS: Record<PipelineState, string> = {
  unloaded: "unloaded",
  loading: "loading…",
  gpu: "GPU",
  cpu: "CPU",
  offloading: "offloading…",
  rehydrating: "to GPU…",
  failed: "failed",
};

const NONE = "—";
const when = new Intl.DateTimeFormat(undefined, {
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
  hour12: false,
});

/** True while the model holds a session (on the GPU, the CPU, or moving between them). */
export function isLoaded(model: Pick<ModelReport, "placement">): boolean {
  return model.placement !== "none";
}

/** The dot for a model, given the offloader's activity for it. */
export function indicatorOf(model: ModelReport, activity: Activity | undefined): Indicator {
  if (model.state === "failed") return "failed";
  if (model.state === "loading" || model.state === "offloading" || model.state === "rehydrating") {
    return "moving";
  }
  if (model.placement === "gpu") return (activity?.activeCount ?? 0) > 0 ? "active" : "idle";
  if (model.placement === "cpu") return "cpu";
  return "unloaded";
}

const INDICATOR_LABELS: Record<Indicator, string> = {
  active: "On the GPU, serving",
  idle: "On the GPU, idle",
  cpu: "Offloaded to the CPU",
  unloaded: "Unloaded",
  moving: "Changing place",
  failed: "Failed",
};

function latestProfile(model: ModelReport): MemoryProfile | null {
  const { gpuProfile: gpu, cpuProfile: cpu } = model;
  if (gpu && cpu) return gpu.measuredAt >= cpu.measuredAt ? gpu : cpu;
  return gpu ?? cpu;
}

/** "last measured on the GPU, Mar 3, 14:02" (no date when `dates` is false: see rowView). */
function measuredWhen(profile: MemoryProfile, dates: boolean): string {
  const where = `last measured on the ${profile.device.toUpperCase()}`;
  return dates ? `${where}, ${when.format(profile.measuredAt)}` : where;
}

const RAM_MEANING: Record<string, string> = {
  native: "the weights the native engine holds",
  wasm: "the wasm engine's memory",
  webgpu: "the webgpu build's wasm memory (weights are in GPU buffers)",
};

/**
 * A RAM figure: the memory the pipeline's session holds (never negative), with the
 * whole process's RSS in the tooltip when known.
 */
function ramFigure(
  bytes: number,
  kind: "live" | "last",
  context: string,
  engine: string | null,
  rss: number | null,
): Figure {
  const meaning = engine ? RAM_MEANING[engine] ?? "its session's memory" : "its session's memory";
  return {
    text: formatBytes(Math.max(0, bytes)),
    kind,
    title: `${formatBytes(Math.max(0, bytes))}: ${meaning} ${context}` +
      (rss !== null && rss > 0 ? `; the whole process's RSS is ${formatBytes(rss)}` : ""),
  };
}

function gpuNeed(profile: MemoryProfile | null): number | null {
  return profile?.gpuPeakBytes ?? profile?.gpuLoadBytes ?? null;
}

/**
 * The row of `model` at `now` (ms); `activity` and its `receivedAt` come from the latest
 * report. `dates` false leaves dates out of tooltips: the server's time zone is not the
 * browser's, and hydration does not patch attributes.
 */
export function rowView(
  model: ModelReport,
  activity: Activity | undefined,
  receivedAt: number,
  now: number,
  dates = true,
): RowView {
  const indicator = indicatorOf(model, activity);
  const loaded = isLoaded(model);
  const here = model.placement === "gpu" ? model.gpuProfile : model.cpuProfile;
  const latest = latestProfile(model);
  const never = !latest && !model.lastTransition;
  let vram: Figure;
  let ram: Figure;
  let loadTime: Figure;
  if (loaded) {
    vram = model.placement === "gpu"
      ? {
        text: formatBytes(model.gpuBytes),
        kind: "live",
        title: `${formatBytes(model.gpuBytes)} of GPU buffers alive in its worker (tracked)`,
      }
      : { text: formatBytes(0), kind: "none", title: "On the CPU: it holds no GPU memory" };
    // Moved from the other device (an eviction): that device's load is what is known.
    const source = here ?? latest;
    const kind = here ? "live" : "last";
    ram = ramFigure(model.ramBytes, "live", "now", model.engine, model.rssBytes || null);
    loadTime = source?.loadMs == null ? { text: NONE, kind: "none", title: "Not measured yet" } : {
      text: formatMs(source.loadMs),
      kind,
      title: here
        ? `Its load took ${formatMs(source.loadMs)}`
        : `Load took ${formatMs(source.loadMs)} (${measuredWhen(source, dates)})`,
    };
  } else if (never || !latest) {
    const title = "Never loaded: no figures yet (Test load measures every model)";
    vram = ram = loadTime = { text: NONE, kind: "none", title };
  } else {
    const need = gpuNeed(model.gpuProfile);
    vram = need === null ? { text: NONE, kind: "none", title: "Never measured on the GPU" } : {
      text: formatBytes(need),
      kind: "last",
      title: `Needs ${formatBytes(need)} of GPU memory: ${measuredWhen(model.gpuProfile!, dates)}`,
    };
    ram = latest.ramBytes == null
      ? { text: NONE, kind: "none", title: "Not measured" }
      : ramFigure(latest.ramBytes, "last", `(${measuredWhen(latest, dates)})`, null, null);
    loadTime = latest.loadMs === null ? { text: NONE, kind: "none", title: "Not measured" } : {
      text: formatMs(latest.loadMs),
      kind: "last",
      title: `Load took ${formatMs(latest.loadMs)}: ${measuredWhen(latest, dates)}`,
    };
  }
  let idle = NONE;
  if (loaded) {
    if ((activity?.activeCount ?? 0) > 0) idle = "serving";
    // lastUsedAt 0: the offloader has not seen a request for it yet.
    else if (activity && activity.lastUsedAt > 0) {
      idle = formatAge(activity.idleMs + Math.max(0, now - receivedAt));
    } else if (model.lastUsedAt) idle = formatAge(Math.max(0, now - model.lastUsedAt));
    else idle = "unused";
  }
  const deadline = activity?.keepAliveDeadline ?? null;
  const keepAlive = loaded && deadline !== null && (activity?.activeCount ?? 0) === 0
    ? `${activity!.idleAction} in ${formatAge(Math.max(0, deadline - now))}`
    : null;
  return {
    indicator,
    indicatorLabel: INDICATOR_LABELS[indicator],
    stateLabel: STATE_LABELS[model.state],
    engine: loaded ? model.engine ?? "" : "",
    vram,
    ram,
    loadTime,
    idle,
    keepAlive,
    loaded,
  };
}

/** "45 ms", "1.2 s", "14 s". */
export function formatMs(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.round(ms / 1000)} s`;
}

/** The words for a GPU/CPU disagreement, with the measured error when known. */
export function mismatchText(mismatch: ModelReport["gpuMismatch"]): string {
  if (!mismatch || !Number.isFinite(mismatch.maxAbsError)) {
    return "GPU and CPU outputs disagree: it stays on the CPU";
  }
  return `GPU and CPU outputs disagree: max error ${mismatch.maxAbsError.toPrecision(3)} > ` +
    `tolerance ${mismatch.tolerance}; it stays on the CPU`;
}

/** `model` with what a snapshot says of its pipeline now (state, place, bytes, flags). */
export function applySnapshot(model: ModelReport, live: PipelineReport): ModelReport {
  const mismatch = live.gpuMismatch
    ? model.gpuMismatch ?? { maxAbsError: Number.NaN, tolerance: Number.NaN, checkedAt: 0 }
    : null;
  if (
    model.state === live.state && model.gpuBytes === live.gpuBytes &&
    model.pinned === live.pinned && model.leak === live.leak && model.error === live.error &&
    model.gpuMismatch === mismatch && model.ramBytes === live.ramBytes &&
    model.engine === live.engine
  ) return model;
  return {
    ...model,
    state: live.state,
    placement: live.placement,
    gpuBytes: live.gpuBytes,
    gpuBuffers: live.gpuBuffers,
    error: live.error,
    pinned: live.pinned,
    leak: live.leak,
    gpuMismatch: mismatch,
    ramBytes: live.ramBytes,
    engine: live.engine,
  };
}

/** `model` with a test load's measurement as its last-known figures (until the next fetch). */
export function applyMeasurement(
  model: ModelReport,
  measurement: LoadMeasurement,
  at: number,
): ModelReport {
  const device = measurement.placement === "gpu" ? "gpu" : "cpu";
  const profile: MemoryProfile = {
    modelId: model.id,
    device,
    shape: "default",
    gpuLoadBytes: device === "gpu" ? measurement.trackedBytes : null,
    gpuPeakBytes: device === "gpu"
      ? Math.max(measurement.trackedBytes, measurement.vramBytes)
      : null,
    deviceUsedDeltaBytes: measurement.vramBasis === "driver" ? measurement.vramBytes : null,
    rssDeltaBytes: measurement.rssDeltaBytes,
    ramBytes: measurement.ramBytes,
    loadMs: measurement.ms,
    offloadMs: null,
    rehydrateMs: null,
    measuredAt: at,
  };
  return device === "gpu" ? { ...model, gpuProfile: profile } : { ...model, cpuProfile: profile };
}
