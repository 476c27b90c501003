/**
 * The budget: pure functions (no I/O) that estimate what a model needs on the GPU and
 * whether a chain or a switch fits now, counting what is already loaded, the headroom to
 * keep, and which idle pipelines would have to move to the CPU to make room. The rule
 * "bytes available above the headroom" is {@link availableBytes}, written once here.
 * @module
 */
import type { Config } from "../config.ts";
import { PRIORITIES, type Priority } from "../types.ts";
import { formatBytes } from "../units.ts";
import type { HostView } from "./types.ts";

/**
 * A model with no measured figure is estimated as its file size times this factor:
 * weights, plus the activations and the runtime's workspace. Measured on PaddleOCR det
 * here (4.7 MB file, 37 MB of tracked buffers after one 320x320 run), a factor of 1.5
 * is low for convolutional models at large inputs and about right for MatMul chains;
 * measured figures replace it after the first load.
 */
export const FILE_SIZE_FACTOR = 1.5;

/** Where an estimate came from, best first. */
export type EstimateBasis = "profile" | "tracked" | "file";

/** What is known about one model's GPU footprint. */
export interface ModelFootprint {
  id: string;
  /** Size of its .onnx file (or the generated weights). */
  fileBytes: number;
  /** Tracked GPU bytes of its current load, null when it is not on the GPU. */
  trackedBytes: number | null;
  /** The saved measured peak for this device and input shape, null when never measured. */
  profileBytes: number | null;
}

/** An estimate of one model's GPU need. */
export interface ModelEstimate {
  id: string;
  bytes: number;
  basis: EstimateBasis;
}

/** The best known figure for one model: saved peak, else current tracked bytes, else file × factor. */
export function estimateModelVram(model: ModelFootprint): ModelEstimate {
  if (model.profileBytes !== null && model.profileBytes > 0) {
    return { id: model.id, bytes: model.profileBytes, basis: "profile" };
  }
  if (model.trackedBytes !== null && model.trackedBytes > 0) {
    return { id: model.id, bytes: model.trackedBytes, basis: "tracked" };
  }
  return { id: model.id, bytes: Math.ceil(model.fileBytes * FILE_SIZE_FACTOR), basis: "file" };
}

/**
 * What is known of one model's footprint (the estimate rule's inputs): its file bytes, the
 * tracked bytes of its current GPU load (the larger of now and its peak; null off the GPU)
 * and its saved measured peak.
 */
export function footprintOf(
  id: string,
  view: Pick<HostView, "placement" | "gpuBytes" | "gpuPeakBytes"> | undefined,
  fileBytes: number,
  profileBytes: number | null,
): ModelFootprint {
  return {
    id,
    fileBytes,
    trackedBytes: view?.placement === "gpu" ? Math.max(view.gpuBytes, view.gpuPeakBytes) : null,
    profileBytes,
  };
}

/** Headroom's allowance on a device of `totalBytes`: the budget in bytes or as a share, else the total. */
export function budgetBytes(budget: Config["vramBudget"], totalBytes: number): number {
  if (!budget) return totalBytes;
  if (budget.kind === "percent") return Math.floor((totalBytes * budget.percent) / 100);
  return totalBytes > 0 ? Math.min(budget.bytes, totalBytes) : budget.bytes;
}

/** Every model's estimate and their sum. */
export function estimateChainVram(
  models: ModelFootprint[],
): { totalBytes: number; models: ModelEstimate[] } {
  const estimates = models.map(estimateModelVram);
  return { totalBytes: estimates.reduce((sum, e) => sum + e.bytes, 0), models: estimates };
}

/** A pipeline as the placement policy sees it. */
export interface PlacedPipeline {
  id: string;
  placement: "gpu" | "cpu" | "none";
  /** Tracked GPU bytes (0 off the GPU). */
  gpuBytes: number;
  lastUsedAt: number;
  /** In-flight requests and open streams. */
  activeCount: number;
  pinned: boolean;
  /** Its last request's priority, or its model's default: lower goes first when room is made. */
  priority: Priority;
}

/** The GPU as the budget sees it at one instant. */
export interface GpuState {
  /** False when no GPU is usable: nothing fits. */
  available: boolean;
  /** Free bytes on the device now (total − used, all processes). */
  deviceFreeBytes: number;
  /** Headroom's allowance (the configured budget, or the device total). */
  budgetBytes: number;
  /** Free VRAM to keep. */
  headroomBytes: number;
  pipelines: PlacedPipeline[];
  /** Clock for idle times, in ms. */
  now: number;
}

/** An idle pipeline that would move to the CPU. */
export interface EvictionCandidate {
  id: string;
  bytes: number;
  /** Time since its last use; null when it was never used. */
  idleMs: number | null;
}

/** The answer of a pre-flight check. */
export interface FitResult {
  /** True when the chain fits now or after the listed evictions. */
  fits: boolean;
  message: string;
  /** Bytes the chain still needs (members already on the GPU cost nothing more). */
  neededBytes: number;
  /** Bytes free for it now, above the headroom. */
  availableBytes: number;
  headroomBytes: number;
  /** Idle pipelines to move to the CPU, in {@link evictionOrder}, only as many as the shortfall needs. */
  wouldEvict: EvictionCandidate[];
  estimates: ModelEstimate[];
}

/**
 * Bytes usable now above the headroom, when `ourBytes` of ours are on the GPU: the smaller
 * of the device's free bytes and what the budget leaves us, minus the headroom (negative:
 * short of it); 0 when no GPU is usable (there is nothing to be short of). The one copy of
 * the product's defining rule; every figure of room (placing, evicting, a chain's check, a
 * switch's pre-flight, the status, `/metrics`) comes from here.
 */
export function availableBytes(
  room: Pick<GpuState, "available" | "deviceFreeBytes" | "budgetBytes" | "headroomBytes">,
  ourBytes: number,
): number {
  if (!room.available) return 0;
  return Math.min(room.deviceFreeBytes, room.budgetBytes - ourBytes) - room.headroomBytes;
}

/** Our GPU bytes in `state` (the pipelines it lists on the GPU). */
export function gpuBytesOf(state: GpuState): number {
  let ours = 0;
  for (const p of state.pipelines) if (p.placement === "gpu") ours += p.gpuBytes;
  return ours;
}

/**
 * The eviction order, the one rule every eviction follows: lower priority first (a
 * pipeline's priority is its last request's, or its model's default), then least recently
 * used, then by id (a stable order for equal use times).
 */
export function evictionOrder(a: PlacedPipeline, b: PlacedPipeline): number {
  return PRIORITIES.indexOf(b.priority) - PRIORITIES.indexOf(a.priority) ||
    a.lastUsedAt - b.lastUsedAt || a.id.localeCompare(b.id);
}

/**
 * Idle, unpinned GPU pipelines outside `exclude`, in {@link evictionOrder} (lower priority,
 * then least recently used, first), taken until their bytes cover `shortfall` (none when
 * it is ≤ 0).
 */
export function chooseEvictions(
  state: GpuState,
  shortfall: number,
  exclude: ReadonlySet<string>,
): EvictionCandidate[] {
  if (shortfall <= 0) return [];
  const idle: PlacedPipeline[] = [];
  for (const p of state.pipelines) {
    if (
      p.placement === "gpu" && p.activeCount === 0 && !p.pinned && p.gpuBytes > 0 &&
      !exclude.has(p.id)
    ) idle.push(p);
  }
  idle.sort(evictionOrder);
  const chosen: EvictionCandidate[] = [];
  let freed = 0;
  for (const p of idle) {
    if (freed >= shortfall) break;
    const idleMs = p.lastUsedAt > 0 ? Math.max(0, state.now - p.lastUsedAt) : null;
    chosen.push({ id: p.id, bytes: p.gpuBytes, idleMs });
    freed += p.gpuBytes;
  }
  return chosen;
}

/**
 * Can `chain` be on the GPU now? Members already on the GPU cost nothing more; the
 * rest need their estimates. When they do not fit, lists the idle pipelines (least
 * recently used first) whose eviction would make room, and says in words how much is
 * missing.
 */
export function canFitChain(chain: ModelFootprint[], state: GpuState): FitResult {
  // One pass: our GPU bytes, and which members are on the GPU already.
  const members = new Set(chain.map((m) => m.id));
  const onGpu = new Set<string>();
  let ours = 0;
  for (const p of state.pipelines) {
    if (p.placement !== "gpu") continue;
    ours += p.gpuBytes;
    if (members.has(p.id)) onGpu.add(p.id);
  }
  const estimates = chain.map(estimateModelVram);
  // A model listed twice in a chain is loaded once: count each id once.
  const counted = new Set<string>();
  const unknown: string[] = [];
  let needed = 0;
  for (const e of estimates) {
    if (onGpu.has(e.id) || counted.has(e.id)) continue;
    counted.add(e.id);
    needed += e.bytes;
    if (e.bytes === 0) unknown.push(e.id);
  }
  // Nothing measured and no file size: the estimate is 0 B, and the message says so.
  const unknownNote = unknown.length === 0
    ? ""
    : `; no size is known for ${unknown.join(", ")} (never measured, no file size): counted as 0 B`;
  const available = availableBytes(state, ours);
  const base = {
    neededBytes: needed,
    availableBytes: available,
    headroomBytes: state.headroomBytes,
    estimates,
  };
  const names = chain.map((m) => m.id).join(" → ") || "(empty chain)";

  if (!state.available) {
    return {
      ...base,
      fits: false,
      wouldEvict: [],
      message: `No GPU is usable: ${names} would run on the CPU.`,
    };
  }
  if (needed === 0) {
    return {
      ...base,
      fits: true,
      wouldEvict: [],
      message: chain.length === 0
        ? "An empty chain needs nothing."
        : unknown.length > 0
        ? `${names} fits as far as is known${unknownNote}.`
        : `${names} is already on the GPU: it needs nothing more.`,
    };
  }
  if (needed <= available) {
    return {
      ...base,
      fits: true,
      wouldEvict: [],
      message: `${names} fits: needs ${formatBytes(needed)}, ${
        formatBytes(available)
      } free above the ${formatBytes(state.headroomBytes)} headroom${unknownNote}.`,
    };
  }
  const shortfall = needed - available;
  const evict = chooseEvictions(state, shortfall, members);
  const freed = evict.reduce((sum, e) => sum + e.bytes, 0);
  if (freed >= shortfall) {
    return {
      ...base,
      fits: true,
      wouldEvict: evict,
      message: `${names} fits after moving ${evict.map((e) => e.id).join(", ")} to the CPU: needs ${
        formatBytes(needed)
      }, ${formatBytes(Math.max(0, available))} free above the headroom, short by ${
        formatBytes(shortfall)
      }${unknownNote}.`,
    };
  }
  return {
    ...base,
    fits: false,
    wouldEvict: [],
    message: `${names} does not fit: needs ${formatBytes(needed)}, ${
      formatBytes(Math.max(0, available))
    } free above the ${
      formatBytes(state.headroomBytes)
    } headroom; evicting every idle pipeline frees ${formatBytes(freed)}, still short by ${
      formatBytes(shortfall - freed)
    }${unknownNote}.`,
  };
}

/** The answer of a switch's pre-flight: would the targets fit with every other model unloaded? */
export interface SwitchFit {
  fits: boolean;
  /** Bytes the targets still need (those on the GPU already cost nothing more). */
  neededBytes: number;
  /** Bytes that would be free above the headroom with every other model unloaded. */
  availableBytes: number;
  headroomBytes: number;
}

/**
 * A switch's pre-flight: with every model but `targets` unloaded (their bytes back to the
 * device), do the targets that are not on the GPU fit above the headroom? `state` lists no
 * pipelines (its free bytes are the driver's); `ourBytes` is everything of ours on the GPU.
 */
export function switchFits(
  targets: Array<{ footprint: ModelFootprint; gpuBytes: number; onGpu: boolean }>,
  state: GpuState,
  ourBytes: number,
): SwitchFit {
  let targetsOnGpu = 0;
  let needed = 0;
  for (const t of targets) {
    if (t.onGpu) targetsOnGpu += t.gpuBytes;
    else needed += estimateModelVram(t.footprint).bytes;
  }
  const freeAfter = state.deviceFreeBytes + (ourBytes - targetsOnGpu);
  const available = availableBytes({ ...state, deviceFreeBytes: freeAfter }, targetsOnGpu);
  return {
    fits: needed <= available,
    neededBytes: needed,
    availableBytes: available,
    headroomBytes: state.headroomBytes,
  };
}
