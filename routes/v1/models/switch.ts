/**
 * `POST /v1/models/switch` with `{"model": id}` (exclusive use): pre-flight, unload the
 * other models, load this one alone and answer `{"status": "success", "model", "vram_mb",
 * "ram_mb", "rss_mb", "engine", …}` with VRAM measured as device used after − baseline
 * before and RAM as what the session holds (never negative; the process RSS apart).
 * Unloads nothing when it cannot fit (reject mode: 507); puts the previous models back when
 * the load fails; answers at once when it is loaded alone already. A chat model that is a
 * chain (`ocr`: ocr-det → ocr-cls → ocr-rec) switches as its chain: its pipelines are loaded
 * together, alone, and `model` answers the chat model's id. A switch
 * that would unload a pinned model is refused (409, naming it) unless the body says
 * `"force": true`. Mutating: needs the token when one is set.
 */
import { z } from "zod";
import type { Handlers, RouteConfig } from "@/server/http/context.ts";
import type { SwitchResult } from "@/core/placement/types.ts";
import { chatModels } from "@/routes/v1/(_lib)/chat_models.ts";

/** The request body. */
export const bodySchema = z.object({
  model: z.string().min(1, "must name a model id"),
  /** Unload pinned models too (without it, a switch that would is refused, naming them). */
  force: z.boolean().optional(),
}).strict();

/** Mutating; answers the measured figures. */
export const config = {
  summary: "Exclusive mode: unload the others, load this model, answer its measured VRAM and RAM",
  auth: "mutating",
  body: bodySchema,
  responses: {
    POST: {
      200: z.object({
        status: z.literal("success"),
        model: z.string(),
        models: z.array(z.string()),
        device: z.enum(["gpu", "cpu", "none"]),
        vram_mb: z.number(),
        ram_mb: z.number(),
        rss_mb: z.number(),
        engine: z.enum(["native", "wasm", "webgpu"]).nullable(),
        unloaded: z.array(z.string()),
        load_ms: z.number(),
        already_loaded: z.boolean(),
        reason: z.string().nullable(),
      }) satisfies z.ZodType<SwitchResult>,
    },
  },
} satisfies RouteConfig;

/** Switches and answers the measured figures. */
export const handler: Handlers<"/v1/models/switch", typeof config> = {
  POST: async (c) => {
    const { model, force } = c.req.valid("json");
    const { scheduler } = c.var.services;
    const ids = chatModels(c.var.services).find((m) => m.id === model)?.pipelines ?? [model];
    for (const id of ids) scheduler.require(id); // 404 before anything moves
    const result = await scheduler.switchTo(ids, { trigger: "switch", force });
    return c.json({ ...result, model } satisfies SwitchResult);
  },
};
