/**
 * Every event placement logs, built here and nowhere else: each builder answers one typed
 * event (core/types.ts, one type per kind) with its sentence. An eviction event names the
 * pipeline, the bytes, the idle time, the reason and its code, and the trigger: with
 * `evict` in scheduler.ts that answers "why was X evicted" in two hops.
 * @module
 */
import type {
  EvictionEvent,
  EvictionReason,
  FailureEvent,
  InfoEvent,
  KeepAliveEvent,
  LeakEvent,
  NewEvent,
  OomEvent,
  PlacementEvent,
  ReleaseEvent,
  SwitchEvent,
} from "../types.ts";
import type { SessionDevice } from "../pipelines/protocol.ts";
import { formatBytes } from "../units.ts";
import type { EvictionCandidate, ModelEstimate } from "./budget.ts";

/** An event before the log numbers and times it. */
type New<E> = Omit<E, "seq" | "at">;

/** Logs one event (the service's EventLog). */
export type Emit = (event: NewEvent) => void;

/** `id` went to the GPU through the policy. */
export function placedOnGpu(
  id: string,
  estimate: ModelEstimate,
  trigger: string,
): New<PlacementEvent> {
  return {
    kind: "placement",
    pipeline: id,
    message: `placed ${id} on the GPU (${estimate.basis} estimate ${formatBytes(estimate.bytes)})`,
    reason: "requested",
    bytes: estimate.bytes,
    trigger,
  };
}

/** `id` serves on the CPU, and why. */
export function servesOnCpu(id: string, why: string, trigger: string): New<PlacementEvent> {
  return {
    kind: "placement",
    pipeline: id,
    message: `${id} serves on the CPU: ${why}`,
    reason: why,
    trigger,
  };
}

/** `id` was refused the GPU (reject mode), and why. */
export function refusedGpu(id: string, why: string): New<PlacementEvent> {
  return {
    kind: "placement",
    pipeline: id,
    message: `refused ${id} on the GPU: ${why}`,
    reason: why,
  };
}

/** A load or run of `id` ran out of GPU memory. */
export function outOfMemory(id: string, attempt: number, error: Error): New<OomEvent> {
  return {
    kind: "oom",
    pipeline: id,
    message: `${id}: out of GPU memory (attempt ${attempt}): ${error.message}`,
    reason: error.message,
  };
}

/** Loading `id` on `device` failed for another reason than memory or WebGPU. */
export function loadFailed(id: string, device: SessionDevice, error: Error): New<FailureEvent> {
  return {
    kind: "failure",
    pipeline: id,
    message: `${id}: loading on the ${device.toUpperCase()} failed: ${error.message}`,
    reason: error.message,
  };
}

/** An idle pipeline left the GPU for the CPU to free memory. */
export function evicted(
  candidate: EvictionCandidate,
  reason: string,
  reasonCode: EvictionReason,
  trigger: string,
): New<EvictionEvent> {
  return {
    kind: "eviction",
    pipeline: candidate.id,
    message: `evicted ${candidate.id} (${
      candidate.idleMs === null ? "never used" : `idle ${Math.round(candidate.idleMs / 1000)} s`
    }, ${formatBytes(candidate.bytes)}) ${reason}`,
    reason,
    reasonCode,
    bytes: candidate.bytes,
    idleMs: candidate.idleMs,
    trigger,
  };
}

/** `id` moved to the CPU for a reason other than an explicit request. */
export function movedToCpu(
  id: string,
  reason: string,
  bytes: number,
  trigger: string,
): New<PlacementEvent> {
  return {
    kind: "placement",
    pipeline: id,
    message: `moved ${id} to the CPU (${reason})`,
    reason,
    bytes,
    trigger,
  };
}

/** `id` was unloaded for a reason other than an explicit request. */
export function unloaded(
  id: string,
  reason: string,
  bytes: number,
  trigger: string,
): New<PlacementEvent> {
  return {
    kind: "placement",
    pipeline: id,
    message: `unloaded ${id} (${reason})`,
    reason,
    bytes,
    trigger,
  };
}

/** The driver shows the bytes `id` released. */
export function releaseConfirmed(id: string, bytes: number, ms: number): New<ReleaseEvent> {
  return {
    kind: "release",
    pipeline: id,
    message: `${id}: the driver shows its ${formatBytes(bytes)} back after ${ms} ms`,
    reason: "release confirmed",
    bytes,
  };
}

/**
 * An eviction of `id` the driver cannot show (it never showed the pipeline's bytes arrive,
 * or they are too few to check): its bytes count as freed, so no other pipeline is evicted
 * for the same shortfall.
 */
export function releaseUnshown(id: string, bytes: number): New<ReleaseEvent> {
  return {
    kind: "release",
    pipeline: id,
    message: `${id}: the driver cannot show its ${
      formatBytes(bytes)
    } release (it never showed them arrive, or they are too few to check); counted as freed, so no other pipeline is evicted for the same shortfall`,
    reason: "release not shown",
    bytes,
  };
}

/** The driver did not show a release of `id` in time. */
export function releaseLeak(id: string, leak: string, bytes: number): New<LeakEvent> {
  return { kind: "leak", pipeline: id, message: `${id}: ${leak}`, reason: leak, bytes };
}

/** Keep-alive ran out for `id`: it was offloaded or unloaded. */
export function keepAliveExpired(
  id: string,
  action: "offload" | "unload",
  reason: string,
  idleMs: number,
): New<KeepAliveEvent> {
  return {
    kind: "keep-alive",
    pipeline: id,
    message: `${action === "unload" ? "unloaded" : "offloaded"} ${id}: ${reason}`,
    reason,
    idleMs,
    trigger: "keep-alive",
  };
}

/** `id` was pinned or unpinned through the API. */
export function pinChanged(id: string, pinned: boolean): New<InfoEvent> {
  return {
    kind: "info",
    pipeline: id,
    message: `${id} ${pinned ? "pinned" : "unpinned"}`,
    trigger: "api",
  };
}

/** Preloading `id` at start failed. */
export function preloadFailed(id: string, error: Error): New<FailureEvent> {
  return {
    kind: "failure",
    pipeline: id,
    message: `preloading ${id} failed: ${error.message}`,
    reason: error.message,
    trigger: "preload",
  };
}

/** Tracked GPU bytes outlived a move of `id` off the GPU (the worker still holds them). */
export function trackedLeak(id: string, kind: string, bytes: number): New<LeakEvent> {
  const leak = `${bytes} GPU bytes still tracked after ${kind}`;
  return { kind: "leak", pipeline: id, message: `${id}: ${leak}`, reason: leak, bytes };
}

/** A switch to `ids` was refused before anything was unloaded: they cannot fit. */
export function switchRefused(
  ids: string[],
  kind: "switch" | "auto-switch",
  why: string,
  trigger: string,
): New<FailureEvent> {
  return {
    kind: "failure",
    pipeline: ids[0],
    message: `${kind} to ${ids.join(", ")} refused: ${why}; nothing was unloaded`,
    reason: why,
    trigger,
  };
}

/** A switch to `ids` failed to load them; `message` says what was put back. */
export function switchFailed(
  ids: string[],
  message: string,
  error: Error,
  trigger: string,
): New<FailureEvent> {
  return { kind: "failure", pipeline: ids[0], message, reason: error.message, trigger };
}

/** A switch to `ids` is done, with what it measured. */
export function switched(
  ids: string[],
  options: { auto: boolean; trigger: string },
  result: { placement: "gpu" | "cpu" | "none"; vramBytes: number; vramMb: number; ramMb: number },
  extra: { loadMs: number; unloaded: string[]; reason: string | null },
): New<SwitchEvent> {
  const kind = options.auto ? "auto-switch" : "switch";
  return {
    kind,
    pipeline: ids[0],
    message: `${options.auto ? `auto-switched (${options.trigger})` : "switched"} to ${
      ids.join(", ")
    } on the ${result.placement.toUpperCase()}: ${result.vramMb} MB VRAM, ${result.ramMb} MB RAM, ${extra.loadMs} ms; unloaded ${
      extra.unloaded.join(", ") || "nothing"
    }`,
    reason: extra.reason ?? `${kind} to ${ids.join(", ")}`,
    trigger: options.trigger,
    bytes: result.vramBytes,
    vramMb: result.vramMb,
    ramMb: result.ramMb,
  };
}
