/**
 * Routes that run a fixed set of pipelines (the OCR chain, the `ocr` chat model) check
 * up front that the catalog has them, so a models file without them gets an answer that
 * names every model the route needs and how to add them, not "Unknown model ocr-det".
 * @module
 */
import type { Catalog } from "../../core/models/catalog.ts";
import { HttpError } from "./http_error.ts";

/** The catalog ids among `ids` that `catalog` lacks. */
export function missingModels(catalog: Catalog, ids: readonly string[]): string[] {
  return ids.filter((id) => catalog.find(id) === undefined);
}

/**
 * Throws a 404 `model_not_found` HttpError naming what `what` needs and what is missing,
 * when the catalog lacks any of `ids`.
 */
export function requireModels(
  catalog: Catalog,
  ids: readonly string[],
  what: string,
  param: string | null = null,
): void {
  const missing = missingModels(catalog, ids);
  if (missing.length === 0) return;
  throw new HttpError(
    404,
    "model_not_found",
    `${what} needs the models ${ids.join(", ")}; this server's models file lacks ${
      missing.join(", ")
    }. Add them to the models file (see docs/models.md: the built-in entries use ` +
      `"plugin": "builtin:<id>"), or start without --models for the built-in catalog.`,
    {},
    param,
  );
}
