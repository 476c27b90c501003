/** `GET /api/openapi.json`: the OpenAPI document, generated from the route manifest's schemas. */
import type { Handlers } from "../../server/http/context.ts";
import { buildOpenApi } from "../../server/http/openapi.ts";

let cached: Record<string, unknown> | null = null;

/** Answers the document (built once, on first request). */
export const handler: Handlers = {
  GET: (c) => {
    cached ??= buildOpenApi(c.var.routes, "0.1.0");
    return c.json(cached);
  },
};
