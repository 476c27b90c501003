/**
 * `GET /v1/models` (OpenAI-compatible): `{object: "list", data: [{id, object: "model",
 * created, owned_by}]}`: the chat models first (what `/v1/chat/completions` takes), then
 * every catalog pipeline. `created` is when this server started (models have no other date here).
 */
import { z } from "zod";
import type { Handlers, RouteConfig } from "@/server/http/context.ts";
import { openAiModelSchema } from "@/server/http/schemas.ts";
import { listOpenAiModels } from "@/routes/v1/(_lib)/chat_models.ts";

/** A read; answers OpenAI's list shape. */
export const config: RouteConfig = {
  summary: "OpenAI-compatible: the models this server answers to (chat models first)",
  auth: "read",
  responses: {
    GET: { 200: z.object({ object: z.literal("list"), data: z.array(openAiModelSchema) }) },
  },
};

/** Answers the list. */
export const handler: Handlers = {
  GET: (c) => c.json({ object: "list", data: listOpenAiModels(c.var.services) }),
};
