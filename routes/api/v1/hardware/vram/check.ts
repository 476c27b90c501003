/**
 * `POST /api/v1/hardware/vram/check` with `{"pipelines": ["ocr-det", …]}`: the pre-flight
 * budget check. Changes nothing; answers `{fits, message, neededBytes, availableBytes,
 * headroomBytes, wouldEvict, estimates}`.
 */
import { z } from "zod";
import type { Handlers, RouteConfig } from "@/server/http/context.ts";
import { fitResultSchema, pipelineListSchema } from "@/server/http/schemas.ts";

/** The request body. */
export const bodySchema = z.object({ pipelines: pipelineListSchema }).strict();

/** A read (it changes nothing), with a small JSON body. */
export const config = {
  summary:
    "Pre-flight: can these pipelines fit on the GPU now, and what would be evicted (changes nothing)",
  auth: "read",
  body: bodySchema,
  responses: { POST: { 200: fitResultSchema } },
} satisfies RouteConfig;

/** Answers the FitResult for the listed pipelines. */
export const handler: Handlers<"/api/v1/hardware/vram/check", typeof config> = {
  POST: (c) => {
    const { pipelines } = c.req.valid("json");
    // check() answers 404 naming an unknown id.
    return c.json(c.var.services.scheduler.check(pipelines));
  },
};
