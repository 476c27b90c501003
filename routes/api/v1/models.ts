/** `GET /api/v1/models`: the catalog with each model's live state and last figures. */
import { z } from "zod";
import type { Handlers, RouteConfig } from "@/server/http/context.ts";
import { modelRowSchema } from "@/server/http/schemas.ts";

/** A read; answers the catalog. */
export const config: RouteConfig = {
  summary: "The catalog with each model's state and figures",
  auth: "read",
  responses: { GET: { 200: z.object({ models: z.array(modelRowSchema) }) } },
};

/** Answers `{models: ModelRow[]}` in catalog order. */
export const handler: Handlers = {
  GET: (c) => c.json({ models: c.var.services.scheduler.list() }),
};
