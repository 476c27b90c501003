/** `GET /api/openapi.json`: the OpenAPI document, generated from the route manifest's schemas. */
import type { Handlers } from "../../core/http/context.ts";
import { buildOpenApi } from "../../core/http/openapi.ts";

let cached: Record<string, unknown> | null = null;

/** Answers the document (built once, on first request). */
export const handler: Handlers = {
  GET: async (c) => {
    if (!cached) {
      // Imported here: the manifest imports this file.
      const { routes } = await import("../_manifest.ts");
      cached = buildOpenApi(routes, "0.1.0");
    }
    return c.json(cached);
  },
};
