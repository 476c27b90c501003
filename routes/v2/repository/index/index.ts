/**
 * `POST /v2/repository/index`: Triton's model-repository index: every model of the
 * catalog, loaded or not, with its state (READY, LOADING, UNAVAILABLE) and why.
 */
import { z } from "zod";
import type { Handlers, RouteConfig } from "@/server/http/context.ts";
import { isReady, repositoryEntry, repositoryEntrySchema } from "@/server/oip/models.ts";

/** `$repository_index_request` (the body may be empty). */
export const bodySchema = z.object({
  ready: z.boolean({ error: "must be true or false" }).optional(),
}).strict();

/** A read (a POST only because Triton defines it so). */
export const config = {
  summary: "Model repository: every model, loaded or not, with its state",
  auth: "read",
  body: bodySchema,
  responses: { POST: { 200: z.array(repositoryEntrySchema) } },
} satisfies RouteConfig;

/** Answers `$repository_index_response`; with `{"ready": true}` only the models ready now. */
export const handler: Handlers<"/v2/repository/index", typeof config> = {
  POST: (c) => {
    const body = c.req.valid("json");
    const rows = c.var.services.scheduler.list().filter((row) => !body.ready || isReady(row));
    return c.json(rows.map(repositoryEntry));
  },
};
