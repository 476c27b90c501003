/**
 * `POST /api/v1/pipelines/{id}/infer`: runs a model on tensors given as JSON
 * (`{inputs: {name: {type, dims, data}}}`), loading it first if needed. A model with a
 * plugin takes `{payload: …}` instead (its plugin's own input).
 */
import { z } from "zod";
import type { Handlers, RouteConfig } from "@/server/http/context.ts";
import { HttpError } from "@/server/http/http_error.ts";
import {
  jsonTensorInputSchema,
  jsonTensorSchema,
  jsonToWire,
  MAX_TENSOR_ELEMENTS,
  wireToJson,
} from "@/server/http/tensors.ts";
import { pluginOutputToJson } from "@/server/http/plugin_json.ts";
import { headerPriority } from "@/server/http/priority.ts";
import type { RunInput } from "@/core/pipelines/protocol.ts";

/** The request body. */
export const bodySchema = z.object({
  inputs: z.record(z.string().min(1), jsonTensorInputSchema).optional(),
  payload: z.unknown().optional(),
}).strict().refine((body) => (body.inputs === undefined) !== (body.payload === undefined), {
  message: 'expected {"inputs": {name: {type, dims, data}}} or {"payload": …} for a plugin model',
});

/** Largest request body: tensors as JSON numbers are large. */
export const MAX_INFER_BODY_BYTES = 256 * 2 ** 20;

/** Inference: needs the token with HEADROOM_TOKEN_FOR_INFER. */
export const config = {
  summary: "Run a model on JSON tensors (or a plugin payload), loading it first if needed",
  priority: true,
  auth: "infer",
  bodyLimit: MAX_INFER_BODY_BYTES,
  // More values than the tensors may hold in all is refused while the body streams in.
  maxElements: MAX_TENSOR_ELEMENTS + 1024,
  // Long tensor data is parsed into Float64Arrays (off the main thread for a large body).
  lift: { numbers: ["inputs.*.data"] },
  params: { id: "model" }, // 404 before a large body is read
  body: bodySchema,
  responses: {
    POST: {
      200: z.object({
        model: z.string(),
        device: z.enum(["gpu", "cpu"]),
        ms: z.number(),
        outputs: z.record(z.string(), jsonTensorSchema).optional(),
        output: z.unknown().optional(),
      }),
    },
  },
} satisfies RouteConfig;

/** Answers `{model, device, ms, outputs}` (or `{…, output}` for a plugin payload). */
export const handler: Handlers<"/api/v1/pipelines/:id/infer", typeof config> = {
  POST: async (c) => {
    const id = c.req.param("id");
    const { scheduler } = c.var.services;
    const body = c.req.valid("json");
    const priority = headerPriority(c);
    let input: RunInput;
    if (body.inputs) {
      if (Object.keys(body.inputs).length === 0) {
        throw new HttpError(400, "bad_body", 'field "inputs": must name at least one input');
      }
      input = { kind: "tensors", tensors: jsonToWire(body.inputs) };
    } else {
      if (!scheduler.model(id).plugin) {
        throw new HttpError(
          400,
          "bad_body",
          `field "payload": model "${id}" has no plugin; send "inputs" tensors`,
        );
      }
      input = { kind: "plugin", payload: body.payload };
    }
    const result = await scheduler.run(id, input, {
      trigger: "infer",
      signal: c.req.raw.signal,
      priority,
    });
    const output = result.output.kind === "tensors"
      ? { outputs: wireToJson(result.output.tensors) }
      : { output: pluginOutputToJson(result.output.payload) };
    return c.json({ model: id, device: result.device, ms: result.ms, ...output });
  },
};
