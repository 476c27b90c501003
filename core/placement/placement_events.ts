/**
 * The events the scheduler's own moves log, written once here: each builder answers the
 * structured event (kind, reason, bytes, trigger) with its sentence. Switches and test
 * loads word theirs in sections.ts; every event goes through one {@link Emit}.
 * @module
 */
import type { EvictionReason, HeadroomEvent } from "../types.ts";
import type { SessionDevice } from "../pipelines/protocol.ts";
import { formatBytes } from "../units.ts";
import type { EvictionCandidate, ModelEstimate } from "./budget.ts";

/** An event before the log numbers and times it. */
export type NewEvent = Omit<HeadroomEvent, "seq" | "at">;

/** Logs one event (the service's EventLog). */
export type Emit = (event: NewEvent) => void;

/** `id` went to the GPU through the policy. */
export function placedOnGpu(id: string, estimate: ModelEstimate, trigger: string): NewEvent {
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
export function servesOnCpu(id: string, why: string, trigger: string): NewEvent {
  return {
    kind: "placement",
    pipeline: id,
    message: `${id} serves on the CPU: ${why}`,
    reason: why,
    trigger,
  };
}

/** `id` was refused the GPU (reject mode), and why. */
export function refusedGpu(id: string, why: string): NewEvent {
  return {
    kind: "placement",
    pipeline: id,
    message: `refused ${id} on the GPU: ${why}`,
    reason: why,
  };
}

/** A load or run of `id` ran out of GPU memory. */
export function outOfMemory(id: string, attempt: number, error: Error): NewEvent {
  return {
    kind: "oom",
    pipeline: id,
    message: `${id}: out of GPU memory (attempt ${attempt}): ${error.message}`,
    reason: error.message,
  };
}

/** Loading `id` on `device` failed for another reason than memory or WebGPU. */
export function loadFailed(id: string, device: SessionDevice, error: Error): NewEvent {
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
): NewEvent {
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
export function movedToCpu(id: string, reason: string, bytes: number, trigger: string): NewEvent {
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
export function unloaded(id: string, reason: string, bytes: number, trigger: string): NewEvent {
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
export function releaseConfirmed(id: string, bytes: number, ms: number): NewEvent {
  return {
    kind: "release",
    pipeline: id,
    message: `${id}: the driver shows its ${formatBytes(bytes)} back after ${ms} ms`,
    reason: "release confirmed",
    bytes,
  };
}

/** The driver did not show a release of `id` in time. */
export function releaseLeak(id: string, leak: string, bytes: number): NewEvent {
  return { kind: "leak", pipeline: id, message: `${id}: ${leak}`, reason: leak, bytes };
}

/** Keep-alive ran out for `id`: it was offloaded or unloaded. */
export function keepAliveExpired(
  id: string,
  action: "offload" | "unload",
  reason: string,
  idleMs: number,
): NewEvent {
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
export function pinChanged(id: string, pinned: boolean): NewEvent {
  return {
    kind: "info",
    pipeline: id,
    message: `${id} ${pinned ? "pinned" : "unpinned"}`,
    trigger: "api",
  };
}

/** Preloading `id` at start failed. */
export function preloadFailed(id: string, error: Error): NewEvent {
  return {
    kind: "failure",
    pipeline: id,
    message: `preloading ${id} failed: ${error.message}`,
    reason: error.message,
    trigger: "preload",
  };
}
