/**
 * `POST /v1/models/switch` with `{"model": id}` (exclusive mode): unloads the previous
 * model(s), loads this one, and answers `{"status": "success", "model", "vram_mb",
 * "ram_mb", "rss_mb", "engine", …}` with VRAM measured as device used after − baseline before
 * and RAM as what the session holds (never negative; the process RSS apart).
 * Mutating: needs the token when one is set.
 */
import { z } from "zod";
import type { Handlers } from "../../../core/http/context.ts";
import { parseJsonBody } from "../../../core/http/validate.ts";
import { switchModel } from "../../../core/pipelines/switch.ts";

/** The request body. */
export const bodySchema = z.object({ model: z.string().min(1, "must name a model id") }).strict();

/** Switches and answers the measured figures. */
export const handler: Handlers = {
  POST: async (c) => {
    const { model } = await parseJsonBody(c, bodySchema);
    c.var.services.manager.get(model);
    return c.json(await switchModel(c.var.services, model));
  },
};
