/**
 * OpenAI chat messages as Headroom reads them: the request schema (the fields clients
 * send, with OpenAI's documented ranges; those Headroom does not act on, and unknown
 * ones, are accepted and named in a response header) and the
 * reduction of each message to its text and its images. Images must be base64 `data:`
 * URLs of PNG or JPEG: Headroom never fetches a remote URL on a caller's behalf.
 * @module
 */
import { z } from "zod";
import { HttpError } from "../http/http_error.ts";
import type { LiftedDataUrl } from "../http/json_body.ts";

/** A `data:` URL decoded while its body was parsed (it cannot come from JSON itself). */
const liftedDataUrlSchema = z.object({
  header: z.string(),
  base64Chars: z.number(),
  bytes: z.instanceof(Uint8Array),
}) satisfies z.ZodType<LiftedDataUrl>;

/** One content part: text, or an image by URL. */
const partSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("text"), text: z.string() }),
  z.object({
    type: z.literal("image_url"),
    image_url: z.object({
      // A large data: URL arrives decoded (the route's `lift`, off the main thread).
      url: z.union([z.string().min(1), liftedDataUrlSchema]),
      detail: z.string().optional(),
    }),
  }),
]);

/** One message of the conversation. */
const messageSchema = z.object({
  role: z.enum(["system", "developer", "user", "assistant", "tool"], {
    error: "expected one of system, developer, user, assistant, tool",
  }),
  content: z.union([z.string(), z.array(partSchema)]).nullable().optional(),
  name: z.string().optional(),
});

const range = (min: number, max: number) =>
  z.number().min(min, `must be from ${min} to ${max}`).max(max, `must be from ${min} to ${max}`);
const positiveInt = z.number().int("must be a whole number").min(1, "must be at least 1");

/**
 * The fields OpenAI documents for a chat request that Headroom does not act on, each with
 * the type and range OpenAI gives it: a bad value is a 400 naming the field (as OpenAI
 * answers it); a good one is accepted and named in {@link IGNORED_FIELDS_HEADER}.
 */
const documentedFields = {
  temperature: range(0, 2),
  top_p: range(0, 1),
  presence_penalty: range(-2, 2),
  frequency_penalty: range(-2, 2),
  max_tokens: positiveInt,
  max_completion_tokens: positiveInt,
  seed: z.number().int("must be a whole number"),
  stop: z.union([z.string(), z.array(z.string())], {
    error: "expected a string or an array of up to 4 strings",
  }).refine((stop) => typeof stop === "string" || stop.length <= 4, "takes at most 4 sequences"),
  logprobs: z.boolean(),
  top_logprobs: z.number().int("must be a whole number").min(0).max(20, "must be from 0 to 20"),
  logit_bias: z.record(z.string(), range(-100, 100)),
  user: z.string(),
  tools: z.array(
    z.object({
      type: z.string(),
      function: z.object({ name: z.string().min(1, "must name the function") }).loose().optional(),
    }).loose(),
  ),
  tool_choice: z.union([z.enum(["none", "auto", "required"]), z.object({}).loose()], {
    error: "expected none, auto, required or an object naming a tool",
  }),
  parallel_tool_calls: z.boolean(),
  response_format: z.object({
    type: z.enum(["text", "json_object", "json_schema"], {
      error: "expected text, json_object or json_schema",
    }),
  }).loose(),
  functions: z.array(z.object({}).loose()),
  function_call: z.union([z.string(), z.object({}).loose()], {
    error: "expected a string or an object",
  }),
  store: z.boolean(),
  metadata: z.record(z.string(), z.string()),
  modalities: z.array(z.string()),
  reasoning_effort: z.string(),
  service_tier: z.string(),
};

/**
 * The body of `POST /v1/chat/completions`: the fields Headroom acts on (`model`,
 * `messages`, `stream`, `stream_options`, `n`), the other fields OpenAI documents with
 * their documented ranges, and anything else passed through (OpenAI-compatible clients
 * send extras); {@link ignoredChatFields} names what was not acted on.
 */
export const chatRequestSchema = z.object({
  model: z.string().min(1, "must name a model (GET /v1/models lists them)"),
  messages: z.array(messageSchema).min(1, "must hold at least one message"),
  stream: z.boolean().nullable().optional(),
  stream_options: z.object({ include_usage: z.boolean().optional() }).nullable().optional(),
  n: z.number().int("must be a whole number").min(1, "must be from 1 to 128")
    .max(128, "must be from 1 to 128").nullable().optional(),
  ...Object.fromEntries(
    Object.entries(documentedFields).map(([key, schema]) => [key, schema.nullable().optional()]),
  ) as {
    [K in keyof typeof documentedFields]: z.ZodOptional<
      z.ZodNullable<(typeof documentedFields)[K]>
    >;
  },
}).loose();

/** The fields of a chat request Headroom acts on; every other field given is ignored. */
const HANDLED_FIELDS = new Set(["model", "messages", "stream", "stream_options", "n"]);

/** The response header that names the request fields Headroom accepted but did not act on. */
export const IGNORED_FIELDS_HEADER = "X-Headroom-Ignored-Fields";

/**
 * The fields of `request` Headroom accepted without acting on them (sampling settings,
 * tools, response formats, log probabilities, unknown extras), sorted; null values count
 * as not given.
 */
export function ignoredChatFields(request: Record<string, unknown>): string[] {
  return Object.keys(request)
    .filter((key) =>
      !HANDLED_FIELDS.has(key) && request[key] !== null && request[key] !== undefined
    )
    .sort();
}

/** A parsed chat request. */
export type ChatRequest = z.output<typeof chatRequestSchema>;

/** One message reduced to what a pipeline reads. */
export interface ChatInputMessage {
  role: string;
  text: string;
  images: Uint8Array[];
}

/** Largest decoded image in a message part, in bytes. */
export const MAX_CHAT_IMAGE_BYTES = 20 * 2 ** 20;

/**
 * The paths of a chat body's image URLs: a large one is decoded while the body is parsed,
 * in a body worker (~80 ms for 20 MiB on the main thread).
 */
export const IMAGE_URL_PATHS = ["messages.*.content.*.image_url.url"] as const;

/** Turns each message into its text and decoded images; 400 naming the part on a bad image. */
export function readMessages(request: ChatRequest): ChatInputMessage[] {
  return request.messages.map((message, m) => {
    const content = message.content ?? "";
    if (typeof content === "string") return { role: message.role, text: content, images: [] };
    const texts: string[] = [];
    const images: Uint8Array[] = [];
    content.forEach((part, p) => {
      if (part.type === "text") texts.push(part.text);
      else {images.push(
          decodeImageUrl(part.image_url.url, `messages.${m}.content.${p}.image_url.url`),
        );}
    });
    return { role: message.role, text: texts.join("\n"), images };
  });
}

/**
 * Decodes a `data:image/png;base64,…` or `data:image/jpeg;base64,…` URL to its bytes, or
 * checks one decoded while its body was parsed (the same checks, the same answers).
 */
export function decodeImageUrl(given: string | LiftedDataUrl, param: string): Uint8Array {
  const url = typeof given === "string" ? given : given.header;
  if (!url.startsWith("data:")) {
    const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1] ?? "(none)";
    throw new HttpError(
      400,
      "unsupported_image_url",
      `${param}: "${scheme}:" URLs are not fetched (Headroom never downloads on a caller's ` +
        `behalf); send the image inline as data:image/png;base64,… or data:image/jpeg;base64,…`,
      {},
      param,
    );
  }
  // The header alone is matched; the payload (up to 27 MB of base64) is checked by the
  // decoder: a regex and atob over it held the main thread 4.5 s per 20 MiB image.
  const match = /^data:(image\/(?:png|jpeg|jpg));base64,/i.exec(url.slice(0, 64));
  if (!match) {
    throw new HttpError(
      400,
      "invalid_image_url",
      `${param}: expected a base64 data URL of a PNG or JPEG (data:image/png;base64,…), got "${
        url.slice(0, 40)
      }…"`,
      {},
      param,
    );
  }
  const base64 = typeof given === "string" ? url.slice(match[0].length) : "";
  const base64Chars = typeof given === "string" ? base64.length : given.base64Chars;
  // Before decoding: base64 is 4 characters per 3 bytes; a little room for line breaks.
  if (base64Chars > (MAX_CHAT_IMAGE_BYTES / 3) * 4 * 1.05 + 4) {
    throw new HttpError(
      413,
      "too_large",
      `${param}: the image is over the ${MAX_CHAT_IMAGE_BYTES}-byte limit`,
      {},
      param,
    );
  }
  let bytes: Uint8Array;
  try {
    // native, ~80 ms for 20 MiB (a large one arrives decoded); skips ASCII whitespace
    bytes = typeof given === "string" ? Uint8Array.fromBase64(base64) : given.bytes;
  } catch {
    throw new HttpError(
      400,
      "invalid_image_url",
      `${param}: the base64 data is not valid`,
      {},
      param,
    );
  }
  if (bytes.length > MAX_CHAT_IMAGE_BYTES) {
    throw new HttpError(
      413,
      "too_large",
      `${param}: the image is over the ${MAX_CHAT_IMAGE_BYTES}-byte limit`,
      {},
      param,
    );
  }
  const png = bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47;
  const jpeg = bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff;
  if (!png && !jpeg) {
    throw new HttpError(
      400,
      "invalid_image_url",
      `${param}: the decoded bytes are neither a PNG nor a JPEG`,
      {},
      param,
    );
  }
  return bytes;
}
