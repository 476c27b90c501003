/**
 * `POST /v1/chat/completions` (OpenAI-compatible): `model` names a chat model (`ocr`, or a
 * models-file entry tagged "chat"); `messages` carry text and `image_url` parts (base64
 * `data:` URLs of PNG/JPEG). Answers a `chat.completion`, or with `stream: true` Server-Sent
 * Events of `chat.completion.chunk` ending in `data: [DONE]`. Headroom has no tokenizer:
 * `usage` counts Unicode characters (prompt: the messages' text; completion: the answer).
 * `n` answers that many choices (the models are deterministic: the same text each). The
 * other fields OpenAI documents are checked against its ranges (400 naming the field) and
 * accepted; the answer's `X-Headroom-Ignored-Fields` header names every field given that
 * Headroom did not act on (`temperature, tools`), streamed or not.
 */
import { z } from "zod";
import { streamSSE } from "hono/streaming";
import type { Handlers, RouteConfig } from "@/server/http/context.ts";
import {
  chatRequestSchema,
  IGNORED_FIELDS_HEADER,
  ignoredChatFields,
  IMAGE_URL_PATHS,
  readMessages,
} from "@/server/openai/messages.ts";
import { answerChat } from "@/routes/v1/(_lib)/chat_models.ts";
import { headerPriority } from "@/server/http/priority.ts";

/** The request body's schema (for the OpenAPI document). */
export const bodySchema = chatRequestSchema;

/** Largest request body: a few inline images (base64 grows them by a third). */
export const MAX_CHAT_BODY_BYTES = 32 * 2 ** 20;

/** Inference: needs the token with HEADROOM_TOKEN_FOR_INFER; answers a `chat.completion`. */
export const config = {
  priority: true,
  summary:
    "OpenAI-compatible chat: text and image_url parts (base64 data: URLs) to a chat model (built in: ocr); stream: true answers SSE chunks ending in [DONE]",
  auth: "infer",
  bodyLimit: MAX_CHAT_BODY_BYTES,
  body: bodySchema,
  // A large image's base64 is decoded while the body is parsed (off the main thread).
  lift: { dataUrls: IMAGE_URL_PATHS },
  responses: {
    POST: {
      200: z.object({
        id: z.string(),
        object: z.literal("chat.completion"),
        created: z.number(),
        model: z.string(),
        choices: z.array(z.object({
          index: z.number(),
          message: z.object({
            role: z.literal("assistant"),
            content: z.string(),
            refusal: z.null(),
          }),
          finish_reason: z.literal("stop"),
          logprobs: z.null(),
        })),
        usage: z.object({
          prompt_tokens: z.number(),
          completion_tokens: z.number(),
          total_tokens: z.number(),
        }),
      }),
    },
  },
} satisfies RouteConfig;

const characters = (text: string) => [...text].length;

/** Runs the chat model, then answers at once or as a stream of chunks. */
export const handler: Handlers<"/v1/chat/completions", typeof config> = {
  POST: async (c) => {
    const request = c.req.valid("json");
    const ignored = ignoredChatFields(request);
    if (ignored.length > 0) c.header(IGNORED_FIELDS_HEADER, ignored.join(", "));
    const choices = request.n ?? 1;
    const messages = readMessages(request);
    const { text } = await answerChat(
      c.var.services,
      request.model,
      messages,
      c.req.raw.signal,
      headerPriority(c),
    );
    const id = `chatcmpl-${crypto.randomUUID().replaceAll("-", "")}`;
    const created = Math.floor(Date.now() / 1000);
    const promptTokens = messages.reduce((sum, m) => sum + characters(m.text), 0);
    const completionTokens = characters(text) * choices;
    const usage = {
      prompt_tokens: promptTokens,
      completion_tokens: completionTokens,
      total_tokens: promptTokens + completionTokens,
    };
    if (!request.stream) {
      return c.json({
        id,
        object: "chat.completion",
        created,
        model: request.model,
        choices: Array.from({ length: choices }, (_, index) => ({
          index,
          message: { role: "assistant", content: text, refusal: null },
          finish_reason: "stop",
          logprobs: null,
        })),
        usage,
      });
    }
    const chunk = (index: number, delta: Record<string, unknown>, finish: string | null) => ({
      id,
      object: "chat.completion.chunk",
      created,
      model: request.model,
      choices: [{ index, delta, finish_reason: finish, logprobs: null }],
    });
    return streamSSE(c, async (stream) => {
      const send = (data: unknown) => stream.writeSSE({ data: JSON.stringify(data) });
      const lines = text.split("\n");
      for (let index = 0; index < choices; index++) {
        await send(chunk(index, { role: "assistant", content: "" }, null));
        // One chunk per line read, in reading order.
        for (const [i, line] of lines.entries()) {
          await send(chunk(index, { content: i < lines.length - 1 ? `${line}\n` : line }, null));
        }
        await send(chunk(index, {}, "stop"));
      }
      if (request.stream_options?.include_usage) {
        await send({ ...chunk(0, {}, null), choices: [], usage });
      }
      await stream.writeSSE({ data: "[DONE]" });
    });
  },
};
