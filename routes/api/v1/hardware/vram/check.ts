/**
 * `POST /api/v1/hardware/vram/check` with `{"pipelines": ["ocr-det", …]}`: the pre-flight
 * budget check. Changes nothing; answers `{fits, message, neededBytes, availableBytes,
 * headroomBytes, wouldEvict, estimates}`.
 */
import { z } from "zod";
import type { Handlers } from "../../../../../server/http/context.ts";
import { parseJsonBody } from "../../../../../server/http/validate.ts";

/** A list of catalog ids, checked to exist. */
export const pipelineListSchema = z.array(z.string().min(1).max(64)).min(
  1,
  "must name at least one pipeline",
)
  .max(256, "must name at most 256 pipelines");

/** The request body. */
export const bodySchema = z.object({ pipelines: pipelineListSchema }).strict();

/** Answers the FitResult for the listed pipelines. */
export const handler: Handlers = {
  POST: async (c) => {
    const { pipelines } = await parseJsonBody(c, bodySchema);
    // check() answers 404 naming an unknown id.
    return c.json(c.var.services.scheduler.check(pipelines));
  },
};
