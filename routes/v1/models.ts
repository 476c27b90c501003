/**
 * `GET /v1/models` (OpenAI-compatible): `{object: "list", data: [{id, object: "model",
 * created, owned_by}]}`: the chat models first (what `/v1/chat/completions` takes), then
 * every catalog pipeline. `created` is when this server started (models have no other date here).
 */
import type { Handlers, Services } from "../../server/http/context.ts";
import { chatModels } from "./_chat_models.ts";

/** One entry of the list, as OpenAI's clients read it. */
export interface OpenAiModel {
  id: string;
  object: "model";
  created: number;
  owned_by: string;
}

/** Every model id this server answers to, chat models first. */
export function listOpenAiModels(services: Services): OpenAiModel[] {
  const created = Math.floor(services.startedAt / 1000);
  const ids = new Set([
    ...chatModels(services).map((m) => m.id),
    ...services.catalog.ids(),
  ]);
  return [...ids].map((id) => ({ id, object: "model", created, owned_by: "headroom" }));
}

/** Answers the list. */
export const handler: Handlers = {
  GET: (c) => c.json({ object: "list", data: listOpenAiModels(c.var.services) }),
};
