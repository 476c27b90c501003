/**
 * Chains: an ordered list of pipelines that work together (OCR's det → cls → rec).
 * Creating one runs the pre-flight budget check and, when it fits, places every member
 * on the GPU (evicting what the check listed), all as one scheduler decision; the chain
 * is remembered in KV.
 * @module
 */
import type { Scheduler } from "../placement/scheduler.ts";
import type { FitResult } from "../placement/budget.ts";

/** A chain as the API shows it. */
export interface Chain {
  id: string;
  pipelines: string[];
  createdAt: number;
  /** The pre-flight check made when it was created. */
  check: FitResult;
  /** Where each member ended up. */
  placements: Record<string, "gpu" | "cpu" | "none">;
}

/** Where chains are remembered (the profile store; a narrow view so this module needs no store). */
export interface ChainStore {
  saveChain(chain: Chain): Promise<void>;
}

/** What creating a chain uses: the scheduler that places it and the store that keeps it. */
export interface ChainDeps {
  scheduler: Pick<Scheduler, "placeChain">;
  store: ChainStore;
}

/** Creates (or replaces) a chain: check, then place each member, in order. */
export async function createChain(
  { scheduler, store }: ChainDeps,
  id: string,
  pipelines: string[],
): Promise<Chain> {
  const { check, placements } = await scheduler.placeChain(pipelines);
  const chain: Chain = { id, pipelines, createdAt: Date.now(), check, placements };
  if (check.fits) await store.saveChain(chain);
  return chain;
}
