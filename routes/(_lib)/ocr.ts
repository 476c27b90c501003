/**
 * The OCR chain as the HTTP routes run it (`POST /api/v1/ocr` and the `ocr` chat model):
 * one image through `ocr-det` → `ocr-cls` → `ocr-rec`, each stage a request on the
 * placement policy's run path (auto-load, eviction, exclusive mode), like every inference.
 * @module
 */
import type { Services } from "@/server/http/context.ts";
import { requireModels } from "@/server/http/require_models.ts";
import { type OcrChainResult, runOcrChain } from "@/plugins/ocr_chain.ts";
import type { RunOptions } from "@/core/placement/scheduler.ts";
import type { Priority } from "@/core/types.ts";

/** The pipelines the chain runs, in order. */
export const OCR_MODELS = ["ocr-det", "ocr-cls", "ocr-rec"] as const;

/** Checks the catalog has the chain's models (404 naming them otherwise). */
export function requireOcrModels(services: Services, what: string, param?: string): void {
  requireModels(services.catalog, OCR_MODELS, what, param ?? null);
}

/**
 * Reads one PNG/JPEG image's text, line by line. `trigger` names the route for events;
 * in exclusive mode the three models are switched to as one group; every stage runs at
 * the request's `priority`.
 */
export function runOcr(
  services: Services,
  image: Uint8Array,
  options: { trigger: string; signal?: AbortSignal; priority?: Priority },
): Promise<OcrChainResult> {
  const runOptions: RunOptions = { ...options, group: [...OCR_MODELS] };
  const run = async <T>(id: string, payload: unknown): Promise<T> => {
    const result = await services.scheduler.run(id, { kind: "plugin", payload }, runOptions);
    if (result.output.kind !== "plugin") {
      throw new Error(`${id} answered tensors, not a plugin payload`);
    }
    return result.output.payload as T;
  };
  return runOcrChain({ image }, {
    det: (payload) => run("ocr-det", payload),
    cls: (payload) => run("ocr-cls", payload),
    rec: (payload) => run("ocr-rec", payload),
  });
}
