/**
 * The Open Inference Protocol's per-model routes, shared by `/v2/models/{name}/…` and
 * `/v2/models/{name}/versions/{version}/…` (Headroom's models have one version, "1"):
 * metadata, readiness and inference. Inference goes the way every request goes, through
 * `scheduler.run` (auto-load, eviction, exclusive mode, timeouts).
 * @module
 */
import type { Handlers, RouteConfig, RouteContext } from "@/server/http/context.ts";
import { HttpError } from "@/server/http/http_error.ts";
import { headerPriority, parameterPriority } from "@/server/http/priority.ts";
import {
  answerResponse,
  HEADER_LENGTH_HEADER,
  inferenceAnswer,
  inferenceRequestSchema,
  inferenceResponseSchema,
  isRawBinary,
  parseInferenceBody,
  parseLargeInferenceHeader,
  parseRawBinaryBody,
  readInferenceBody,
} from "@/server/oip/infer.ts";
import {
  checkVersion,
  isReady,
  modelMetadata,
  modelMetadataSchema,
  modelReadySchema,
  modelSignature,
} from "@/server/oip/models.ts";
import { MAX_INFER_BODY_BYTES } from "@/routes/api/v1/pipelines/[id]/infer.ts";

/** The model the URL names (404 for an unknown name or a version other than "1"). */
function namedModel(c: RouteContext) {
  const name = c.req.param("name")!;
  const row = c.var.services.scheduler.model(name);
  checkVersion(name, c.req.param("version"));
  return row;
}

/** Model metadata: a read. */
export const metadataConfig: RouteConfig = {
  summary: "Open Inference Protocol: a model's metadata (inputs, outputs, datatypes, shapes)",
  auth: "read",
  responses: { GET: { 200: modelMetadataSchema } },
};

/** Answers `$metadata_model_response`. */
export const metadataHandler: Handlers = {
  GET: async (c) => c.json(await modelMetadata(namedModel(c), c.var.services.catalog)),
};

/** Model readiness: a read. */
export const readyConfig: RouteConfig = {
  summary: "Open Inference Protocol: is the model loaded (200) or not (400)",
  auth: "read",
  responses: { GET: { 200: modelReadySchema } },
};

/**
 * Answers `{name, ready: true}` while a session is open, else a 400 saying how to load it
 * (an inference request loads it too).
 */
export const readyHandler: Handlers = {
  GET: (c) => {
    const row = namedModel(c);
    if (!isReady(row)) {
      throw new HttpError(
        400,
        "not_ready",
        `model "${row.id}" is not ready (${row.state}): POST /v2/repository/models/${row.id}/load ` +
          "loads it, and an inference request loads it too",
      );
    }
    return c.json({ name: row.id, ready: true });
  },
};

/** Inference: the token rule of inference, the body limit of tensors, JSON or binary bodies. */
export const inferConfig: RouteConfig = {
  priority: true,
  summary:
    "Open Inference Protocol: run a model on JSON or binary tensors, loading it first if needed",
  auth: "infer",
  bodyLimit: MAX_INFER_BODY_BYTES,
  body: inferenceRequestSchema,
  binary: true,
  responses: { POST: { 200: inferenceResponseSchema } },
};

/**
 * Answers `$inference_response`: JSON, or with binary outputs the JSON header and their
 * bytes (`Inference-Header-Content-Length`).
 */
export const inferHandler: Handlers = {
  POST: async (c) => {
    // The 404 before reading a large body; no model row is built for an inference request.
    const id = c.req.param("name")!;
    const { scheduler } = c.var.services;
    scheduler.require(id);
    checkVersion(id, c.req.param("version"));
    const headerLength = c.req.header(HEADER_LENGTH_HEADER);
    const body = await readInferenceBody(c.req.raw, headerLength);
    const { request, tensors } = isRawBinary(headerLength)
      ? parseRawBinaryBody(
        id,
        (await modelSignature(scheduler.model(id), c.var.services.catalog)).inputs,
        body,
      )
      : parseInferenceBody(
        body,
        headerLength,
        (await parseLargeInferenceHeader(body, headerLength)) ?? undefined,
      );
    const result = await scheduler.run(id, { kind: "tensors", tensors }, {
      trigger: "infer",
      signal: c.req.raw.signal,
      priority: parameterPriority(request.parameters?.priority) ?? headerPriority(c),
    });
    if (result.output.kind !== "tensors") {
      throw new Error(`model "${id}" answered a plugin payload to a tensor request`);
    }
    return answerResponse(inferenceAnswer(id, request, result.output.tensors));
  },
};
