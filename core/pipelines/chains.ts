/**
 * Chains: an ordered list of pipelines that work together (OCR's det → cls → rec).
 * Creating one runs the pre-flight budget check and, when it fits, places every member
 * on the GPU (evicting what the check listed), all as one scheduler decision; the chain
 * is remembered in KV.
 * @module
 */
import type { Services } from "../http/context.ts";
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

/** Creates (or replaces) a chain: check, then place each member, in order. */
export async function createChain(
  services: Services,
  id: string,
  pipelines: string[],
): Promise<Chain> {
  const { scheduler, store } = services;
  const { check, placements } = await scheduler.placeChain(pipelines);
  const chain: Chain = { id, pipelines, createdAt: Date.now(), check, placements };
  if (check.fits) await store.saveChain(chain);
  return chain;
}
