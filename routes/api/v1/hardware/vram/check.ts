/**
 * `POST /api/v1/hardware/vram/check` with `{"pipelines": ["ocr-det", …]}`: the pre-flight
 * budget check. Changes nothing; answers `{fits, message, neededBytes, availableBytes,
 * headroomBytes, wouldEvict, estimates}`.
 */
import { z } from "zod";
import type { Handlers, RouteConfig } from "../../../../../server/http/context.ts";
import { parseJsonBody } from "../../../../../server/http/validate.ts";
import { fitResultSchema, pipelineListSchema } from "../../../../../server/http/schemas.ts";

/** The request body. */
export const bodySchema = z.object({ pipelines: pipelineListSchema }).strict();

/** A read (it changes nothing), with a small JSON body. */
export const config: RouteConfig = {
  summary:
    "Pre-flight: can these pipelines fit on the GPU now, and what would be evicted (changes nothing)",
  auth: "read",
  body: bodySchema,
  responses: { POST: { 200: fitResultSchema } },
};

/** Answers the FitResult for the listed pipelines. */
export const handler: Handlers = {
  POST: async (c) => {
    const { pipelines } = await parseJsonBody(c, bodySchema);
    // check() answers 404 naming an unknown id.
    return c.json(c.var.services.scheduler.check(pipelines));
  },
};
