/**
 * How the pipelines table reads a row: its placement dot, the figures to show (live
 * while loaded, last-known while unloaded, none before the first load), its idle time,
 * keep-alive countdown, and the buttons of the actions the server allows. Pure functions
 * (no DOM), shared by the row component and its tests.
 * @module
 */
import type { MemoryProfile, ModelAction, ModelRow, PipelineState } from "../core/types.ts";
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
export function isLoaded(model: Pick<ModelRow, "placement">): boolean {
  return model.placement !== "none";
}

/** The dot for a row. */
export function indicatorOf(model: ModelRow): Indicator {
  if (model.state === "failed") return "failed";
  if (model.state === "loading" || model.state === "offloading" || model.state === "rehydrating") {
    return "moving";
  }
  if (model.placement === "gpu") return model.activeCount > 0 ? "active" : "idle";
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

function latestProfile(model: ModelRow): MemoryProfile | null {
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
 * What the row of `model` shows at `now` (ms, the browser's clock); `receivedAt` is when
 * the row arrived (the same clock), so idle times and countdowns move on between rows
 * without mixing the server's clock with the browser's. `dates` false leaves dates out of
 * tooltips: the server's time zone is not the browser's, and hydration does not patch
 * attributes.
 */
export function rowView(
  model: ModelRow,
  receivedAt: number,
  now: number,
  dates = true,
): RowView {
  const indicator = indicatorOf(model);
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
  const since = Math.max(0, now - receivedAt);
  let idle = NONE;
  if (loaded) {
    if (model.activeCount > 0) idle = "serving";
    // No last use: the scheduler has not seen a request for it yet.
    else if (model.lastUsedAt) idle = formatAge(model.idleMs + since);
    else idle = "unused";
  }
  const deadline = model.keepAliveDeadline ?? null;
  const keepAlive = loaded && deadline !== null && model.activeCount === 0
    ? `${model.idleAction} in ${formatAge(Math.max(0, deadline - model.takenAt - since))}`
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
export function mismatchText(mismatch: ModelRow["gpuMismatch"]): string {
  if (!mismatch || !Number.isFinite(mismatch.maxAbsError)) {
    return "GPU and CPU outputs disagree: it stays on the CPU";
  }
  return `GPU and CPU outputs disagree: max error ${mismatch.maxAbsError.toPrecision(3)} > ` +
    `tolerance ${mismatch.tolerance}; it stays on the CPU`;
}

/** One action button of a row: what it posts, what it says, and its accessible name. */
export interface ActionButton {
  action: ModelAction;
  text: string;
  label: string;
  /** The pin button's tooltip (null on the others). */
  title: string | null;
}

/** The buttons of the actions the server allows on `model`, in its order. */
export function actionButtons(model: ModelRow): ActionButton[] {
  const id = model.id;
  const gpu = model.actions.includes("load-gpu");
  return model.actions.map((action): ActionButton => {
    switch (action) {
      case "load-gpu":
        return model.placement === "cpu"
          ? { action, text: "To GPU", label: `Move ${id} to the GPU`, title: null }
          : { action, text: "Load GPU", label: `Load ${id} on the GPU`, title: null };
      case "load-cpu":
        return {
          action,
          text: gpu ? "Load CPU" : "Load",
          label: `Load ${id} on the CPU`,
          title: null,
        };
      case "offload":
        return { action, text: "Offload", label: `Offload ${id} to the CPU`, title: null };
      case "unload":
        return { action, text: "Unload", label: `Unload ${id}`, title: null };
      case "pin":
        return {
          action,
          text: "Pin",
          label: `Pin ${id}`,
          title: "Pin: the scheduler will never evict it",
        };
      case "unpin":
        return {
          action,
          text: "Unpin",
          label: `Unpin ${id}`,
          title: "Pinned: the scheduler never evicts it. Click to unpin.",
        };
    }
  });
}
