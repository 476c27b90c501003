/** `GET /v1/models/{model}` (OpenAI-compatible): one entry of `GET /v1/models`, or a 404. */
import type { Handlers, RouteConfig } from "@/server/http/context.ts";
import { HttpError } from "@/server/http/http_error.ts";
import { openAiModelSchema } from "@/server/http/schemas.ts";
import { listOpenAiModels } from "@/routes/v1/(_lib)/chat_models.ts";

/** A read; answers one entry of the list. */
export const config: RouteConfig = {
  summary: "OpenAI-compatible: one model of the list",
  auth: "read",
  responses: { GET: { 200: openAiModelSchema } },
};

/** Answers the model's entry. */
export const handler: Handlers<"/v1/models/:model"> = {
  GET: (c) => {
    const id = c.req.param("model");
    const models = listOpenAiModels(c.var.services);
    const found = models.find((m) => m.id === id);
    if (!found) {
      throw new HttpError(
        404,
        "model_not_found",
        `The model "${id}" does not exist; models here: ${models.map((m) => m.id).join(", ")}`,
        {},
        "model",
      );
    }
    return c.json(found);
  },
};
