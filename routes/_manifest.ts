/**
 * Every route and the module that handles it, as Fresh's generated manifest lists
 * them: the path mirrors the file under routes/. Adding a route = adding a file and a
 * line here. The options say who may call it, how large its body may be, and what it
 * takes (the same zod schemas validate requests and generate /api/openapi.json).
 * @module
 */
import type { RouteEntry } from "../server/http/context.ts";
import * as health from "./api/v1/health.ts";
import * as vram from "./api/v1/hardware/vram.ts";
import * as vramHistory from "./api/v1/hardware/vram/history.ts";
import * as vramStream from "./api/v1/hardware/vram/stream.ts";
import * as vramCheck from "./api/v1/hardware/vram/check.ts";
import * as models from "./api/v1/models.ts";
import * as model from "./api/v1/models/[id].ts";
import * as modelLoad from "./api/v1/models/[id]/load.ts";
import * as modelOffload from "./api/v1/models/[id]/offload.ts";
import * as modelRehydrate from "./api/v1/models/[id]/rehydrate.ts";
import * as modelUnload from "./api/v1/models/[id]/unload.ts";
import * as modelPin from "./api/v1/models/[id]/pin.ts";
import * as modelUnpin from "./api/v1/models/[id]/unpin.ts";
import * as testLoad from "./api/v1/models/test-load.ts";
import * as chains from "./api/v1/chains.ts";
import * as modelSwitch from "./v1/models/switch.ts";
import * as openAiModels from "./v1/models.ts";
import * as openAiModel from "./v1/models/[model].ts";
import * as chatCompletions from "./v1/chat/completions.ts";
import * as infer from "./api/v1/pipelines/[id]/infer.ts";
import * as pipelineStream from "./api/v1/pipelines/[id]/stream.ts";
import * as ocr from "./api/v1/ocr.ts";
import * as openapi from "./api/openapi.json.ts";
import * as metrics from "./metrics.ts";
import * as index from "./index.tsx";
import * as staticBuild from "./static/build/[file].ts";

const SMALL_BODY = 64 * 1024;
const MUTATING = { mutating: true, bodyLimit: SMALL_BODY } as const;

/** Every route the app serves. */
export const routes: readonly RouteEntry[] = [
  ["/api/v1/health", health.handler, {
    summary: "Is the service up, and what does it measure with",
  }],
  ["/api/v1/hardware/vram", vram.handler, {
    summary:
      "Every device's VRAM figures, the pipelines' placement, the offloader's status, recent events",
  }],
  ["/api/v1/hardware/vram/history", vramHistory.handler, {
    summary: "The sample history, downsampled (each point keeps its run's peak)",
    query: vramHistory.querySchema(3600),
  }],
  ["/api/v1/hardware/vram/stream", vramStream.handler, {
    summary:
      "Server-Sent Events: a snapshot at once and on every change (≤ 4/s), a heartbeat every 15 s",
    produces: "sse",
  }],
  ["/api/v1/hardware/vram/check", vramCheck.handler, {
    summary:
      "Pre-flight: can these pipelines fit on the GPU now, and what would be evicted (changes nothing)",
    bodyLimit: SMALL_BODY,
    body: vramCheck.bodySchema,
  }],
  ["/api/v1/models", models.handler, {
    summary: "The catalog with each model's state and figures",
  }],
  ["/api/v1/models/test-load", testLoad.handler, {
    summary: "Load each model alone, measure it, stream progress as NDJSON",
    ...MUTATING,
    body: testLoad.bodySchema,
    produces: "ndjson",
  }],
  ["/api/v1/models/:id", model.handler, { summary: "One model's state and figures" }],
  ["/api/v1/models/:id/load", modelLoad.handler, {
    summary: "Load a model on the GPU (making room first) or the CPU",
    ...MUTATING,
    body: modelLoad.bodySchema,
  }],
  ["/api/v1/models/:id/offload", modelOffload.handler, {
    summary: "GPU → CPU: free its GPU memory; it keeps serving on the CPU",
    ...MUTATING,
  }],
  ["/api/v1/models/:id/rehydrate", modelRehydrate.handler, { summary: "CPU → GPU", ...MUTATING }],
  ["/api/v1/models/:id/unload", modelUnload.handler, {
    summary: "Release its session and end its worker",
    ...MUTATING,
  }],
  ["/api/v1/models/:id/pin", modelPin.handler, {
    summary: "Never evict this pipeline",
    ...MUTATING,
  }],
  ["/api/v1/models/:id/unpin", modelUnpin.handler, {
    summary: "Let this pipeline be evicted again",
    ...MUTATING,
  }],
  ["/api/v1/chains", chains.handler, {
    summary:
      "Create an ordered chain after a pre-flight check and place it on the GPU (GET lists them)",
    ...MUTATING,
    body: chains.bodySchema,
  }],
  ["/v1/models/switch", modelSwitch.handler, {
    summary: "Exclusive mode: unload the others, load this model, answer its measured VRAM and RAM",
    ...MUTATING,
    body: modelSwitch.bodySchema,
  }],
  ["/v1/models", openAiModels.handler, {
    summary: "OpenAI-compatible: the models this server answers to (chat models first)",
  }],
  ["/v1/models/:model", openAiModel.handler, {
    summary: "OpenAI-compatible: one model of the list",
  }],
  ["/v1/chat/completions", chatCompletions.handler, {
    summary:
      "OpenAI-compatible chat: text and image_url parts (base64 data: URLs) to a chat model (built in: ocr); stream: true answers SSE chunks ending in [DONE]",
    infer: true,
    bodyLimit: chatCompletions.MAX_CHAT_BODY_BYTES,
    body: chatCompletions.bodySchema,
  }],
  ["/api/v1/pipelines/:id/stream", pipelineStream.handler, {
    summary: "WebSocket: feed chunks (audio for Silero VAD) to a pipeline, kept active while open",
    infer: true,
    produces: "websocket",
  }],
  ["/api/v1/pipelines/:id/infer", infer.handler, {
    summary: "Run a model on JSON tensors (or a plugin payload), loading it first if needed",
    infer: true,
    bodyLimit: 256 * 2 ** 20,
    body: infer.bodySchema,
  }],
  ["/api/v1/ocr", ocr.handler, {
    summary:
      "Image (PNG/JPEG, raw or multipart field `image`) → lines of text, through det → cls → rec",
    infer: true,
    bodyLimit: ocr.MAX_OCR_IMAGE_BYTES + 64 * 1024,
    image: true,
  }],
  ["/api/openapi.json", openapi.handler, { summary: "This document" }],
  ["/metrics", metrics.handler, {
    summary: "Prometheus text (JSON with Accept: application/json)",
    produces: "prometheus",
  }],
  ["/", index.handler, { summary: "The dashboard", page: true, produces: "html" }],
  ["/static/build/:file", staticBuild.handler, {
    summary: "The dashboard's content-hashed assets (immutable)",
    page: true,
    produces: "asset",
  }],
];
