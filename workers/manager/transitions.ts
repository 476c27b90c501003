/**
 * The pipeline state machine: which move brings a pipeline to a device, the state it
 * shows while moving, and where it lands after a move succeeds, is refused or fails.
 * Pure functions of the record's state; the manager applies them.
 *
 * ```
 * unloaded ──load──▶ loading ──▶ gpu | cpu          (refused: back to unloaded)
 * gpu ──offload──▶ offloading ──▶ cpu                (refused: where the worker says)
 * cpu ──rehydrate──▶ rehydrating ──▶ gpu             (refused: stays on cpu)
 * any ──worker died──▶ failed ──load──▶ loading …
 * ```
 * @module
 */
import type { PipelineState, Placement, TransitionKind } from "../../core/types.ts";
import type { SessionDevice, WorkerStatus } from "../../core/pipelines/protocol.ts";

/** A move the worker is asked for: a fresh load, or a move between the devices. */
export type MoveKind = Exclude<TransitionKind, "unload">;

/** The move that brings a pipeline to `device`, given whether it is loaded now. */
export function moveKind(loaded: boolean, device: SessionDevice): MoveKind {
  if (!loaded) return `load:${device}`;
  return device === "cpu" ? "offload" : "rehydrate";
}

/** The state a pipeline shows while `kind` runs. */
export function movingState(kind: MoveKind): PipelineState {
  if (kind === "offload") return "offloading";
  if (kind === "rehydrate") return "rehydrating";
  return "loading";
}

/** True when the state has a session (on either device). */
export function isPlaced(state: PipelineState): state is "gpu" | "cpu" {
  return state === "gpu" || state === "cpu";
}

/** Where a pipeline is once the worker answered with `device` (the move succeeded). */
export function settledState(device: WorkerStatus["device"]): PipelineState {
  return device === "none" ? "unloaded" : device;
}

/**
 * Where a pipeline is after the worker refused a move: where the worker says its session
 * is; with none, unloaded (or still failed when it was).
 */
export function refusedState(before: PipelineState, device: WorkerStatus["device"]): PipelineState {
  if (device !== "none") return device;
  return before === "failed" ? "failed" : "unloaded";
}

/**
 * Where a pipeline is after a move threw: where it was while its worker lives or the
 * model was refused before any engine saw it (too big, corrupt); failed otherwise.
 */
export function thrownState(
  before: PipelineState,
  how: { workerAlive: boolean; refused: boolean },
): PipelineState {
  return how.workerAlive || how.refused ? before : "failed";
}

/** The placement a state implies (transitions count as where they start). */
export function placementOf(state: PipelineState): Placement {
  if (state === "gpu" || state === "offloading") return "gpu";
  if (state === "cpu" || state === "rehydrating") return "cpu";
  return "none";
}
