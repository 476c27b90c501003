/**
 * The models `POST /v1/chat/completions` can answer with. Built in: `ocr`, the
 * `ocr-det` → `ocr-cls` → `ocr-rec` chain, which answers with the text it reads in the
 * images, line by line. A models-file entry tagged `"chat"` is a chat model too: its
 * plugin receives `{messages: [{role, text, images}]}` (images as PNG/JPEG bytes) and
 * answers `{text}`. Every run goes through the placement policy's request path, like
 * `POST /api/v1/pipelines/{id}/infer` (auto-load, eviction, exclusive mode).
 * @module
 */
import type { Services } from "@/server/http/context.ts";
import { HttpError } from "@/server/http/http_error.ts";
import type { ChatInputMessage } from "@/server/openai/messages.ts";
import type { OpenAiModel } from "@/server/http/schemas.ts";
import { OCR_MODELS, requireOcrModels, runOcr } from "@/routes/(_lib)/ocr.ts";
import type { Priority } from "@/core/types.ts";

/** The id of the built-in OCR chat model. */
export const OCR_CHAT_MODEL = "ocr";

/** The tag that makes a catalog model with a plugin a chat model. */
export const CHAT_TAG = "chat";

/** What a chat model answered. */
export interface ChatAnswer {
  /** The assistant's text. */
  text: string;
}

/** One chat model as `GET /v1/models` lists it. */
export interface ChatModelInfo {
  id: string;
  /** The catalog pipelines it runs. */
  pipelines: string[];
}

/** The chat models this server can answer with now (catalog order; `ocr` first when present). */
export function chatModels(services: Services): ChatModelInfo[] {
  const models: ChatModelInfo[] = [];
  if (OCR_MODELS.every((id) => services.catalog.find(id))) {
    models.push({ id: OCR_CHAT_MODEL, pipelines: [...OCR_MODELS] });
  }
  for (const model of services.catalog.list()) {
    if (model.tags.includes(CHAT_TAG) && model.pluginUrl !== null) {
      models.push({ id: model.id, pipelines: [model.id] });
    }
  }
  return models;
}

/** Runs `model` on the conversation (at `priority`); 404/400 naming the model or the field otherwise. */
export async function answerChat(
  services: Services,
  model: string,
  messages: ChatInputMessage[],
  signal?: AbortSignal,
  priority?: Priority,
): Promise<ChatAnswer> {
  if (model === OCR_CHAT_MODEL) {
    requireOcrModels(services, `The chat model "${OCR_CHAT_MODEL}"`, "model");
    const images = messages.filter((m) => m.role === "user").flatMap((m) => m.images);
    if (images.length === 0) {
      throw new HttpError(
        400,
        "no_image",
        `The chat model "${OCR_CHAT_MODEL}" reads text in images: add an image_url part ` +
          `(data:image/png;base64,…) to a user message`,
        {},
        "messages",
      );
    }
    const texts: string[] = [];
    for (const image of images) {
      texts.push((await runOcr(services, image, { trigger: "chat", signal, priority })).text);
    }
    return { text: texts.join("\n\n") };
  }
  const entry = chatModels(services).find((m) => m.id === model);
  if (!entry) {
    const known = chatModels(services).map((m) => m.id);
    const inCatalog = services.catalog.find(model) !== undefined;
    throw new HttpError(
      404,
      "model_not_found",
      inCatalog
        ? `The model "${model}" is a pipeline without a chat capability (run it with POST ` +
          `/api/v1/pipelines/${model}/infer); chat models here: ${known.join(", ") || "none"}`
        : `The model "${model}" does not exist; chat models here: ${known.join(", ") || "none"}`,
      {},
      "model",
    );
  }
  const result = await services.scheduler.run(model, {
    kind: "plugin",
    payload: { messages },
  }, { trigger: "chat", signal, priority });
  const output = result.output.kind === "plugin" ? result.output.payload : null;
  const text = typeof output === "string"
    ? output
    : typeof (output as { text?: unknown } | null)?.text === "string"
    ? (output as { text: string }).text
    : null;
  if (text === null) {
    throw new HttpError(
      502,
      "bad_plugin_answer",
      `The chat model "${model}"'s plugin answered no text: a chat plugin answers {text: string}`,
    );
  }
  return { text };
}

/** Every model id this server answers to on `/v1/models`, chat models first. */
export function listOpenAiModels(services: Services): OpenAiModel[] {
  const created = Math.floor(services.startedAt / 1000);
  const ids = new Set([
    ...chatModels(services).map((m) => m.id),
    ...services.catalog.ids(),
  ]);
  return [...ids].map((id) => ({ id, object: "model", created, owned_by: "headroom" }));
}
