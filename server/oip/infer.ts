/**
 * The Open Inference Protocol's inference request and response (KServe's
 * `open_inference_rest.yaml`, with Triton's binary tensor data extension): the body, JSON
 * alone or a JSON header followed by raw tensor bytes (`Inference-Header-Content-Length`),
 * becomes wire tensors for the scheduler; the outputs it gives back become the response,
 * each output as JSON `data` or as bytes after the header, as the caller asked.
 * @module
 */
import { z } from "zod";
import { isTensorType, type TensorType, type WireTensor } from "../../core/pipelines/protocol.ts";
import { HttpError } from "../http/http_error.ts";
import { type JsonTensorInput, jsonToWire, wireToJson } from "../http/tensors.ts";
import { OFF_THREAD_MIN_BYTES, parseJsonOffThread } from "../http/body_pool.ts";
import { describeIssues } from "../../core/describe_issues.ts";
import {
  decodeTensorBytes,
  ELEMENT_BYTES,
  elementCount,
  encodeTensorBytes,
  TensorBytesError,
} from "./binary.ts";
import { OIP_DATATYPE_NAMES, OIP_DATATYPES, wireTypeOf } from "./datatypes.ts";

/** The header that gives the JSON part's length when binary tensor data follows it. */
export const HEADER_LENGTH_HEADER = "Inference-Header-Content-Length";

/** Media types an inference body may have: JSON, or JSON followed by binary tensor data. */
export const INFER_BODY_TYPES: readonly string[] = ["application/json", "application/octet-stream"];

/** `$parameters`: name → string, number or boolean. */
export const parametersSchema = z.record(
  z.string(),
  z.union([z.string(), z.number(), z.boolean()]),
);

/** `$tensor_data`: numbers, strings or booleans, flat or nested in row-major order. */
type TensorData = Array<number | string | boolean | TensorData>;
const tensorDataSchema: z.ZodType<TensorData> = z.lazy(() =>
  z.array(z.union([z.number(), z.string(), z.boolean(), tensorDataSchema]))
);

/**
 * A request's `data`: an array, its elements checked once, where they become a typed array
 * (server/http/tensors.ts names the element at fault), not walked (and copied) by zod first
 * (28 of the 92 µs a 512-element body took). Documented as `$tensor_data`.
 */
const requestDataSchema = z.custom<unknown[]>(
  // A long flat number array of a large body comes lifted into a Float64Array.
  (value) => Array.isArray(value) || value instanceof Float64Array,
  {
    error: "must be an array of numbers, strings or booleans (nested in row-major order)",
  },
).meta({
  type: "array",
  description: "numbers, strings or booleans, flat or nested in row-major order",
  items: {
    anyOf: [{ type: "number" }, { type: "string" }, { type: "boolean" }, { type: "array" }],
  },
}) as unknown as z.ZodType<TensorData>;

/** One `$request_input`: `data`, or `parameters.binary_data_size` bytes after the header. */
const requestInputSchema = z.object({
  name: z.string().min(1, "must name the input"),
  shape: z.array(z.number().int("must hold whole numbers").min(0, "must not be negative"))
    .max(8, "must have at most 8 dimensions"),
  datatype: z.string(),
  parameters: parametersSchema.optional(),
  data: requestDataSchema.optional(),
});

/** `$inference_request`. */
export const inferenceRequestSchema = z.object({
  id: z.string().optional(),
  parameters: parametersSchema.optional(),
  inputs: z.array(requestInputSchema).min(1, "must list at least one input"),
  outputs: z.array(z.object({
    name: z.string().min(1, "must name the output"),
    parameters: parametersSchema.optional(),
  })).optional(),
});

/** A parsed inference request. */
export type InferenceRequest = z.infer<typeof inferenceRequestSchema>;

/** `$response_output`: JSON `data`, or `parameters.binary_data_size` bytes after the header. */
export const responseOutputSchema = z.object({
  name: z.string(),
  shape: z.array(z.number().int()),
  datatype: z.string(),
  parameters: parametersSchema.optional(),
  data: tensorDataSchema.optional(),
});

/** `$inference_response` (its JSON part, when outputs travel as binary data). */
export const inferenceResponseSchema = z.object({
  model_name: z.string(),
  model_version: z.string().optional(),
  id: z.string().optional(),
  outputs: z.array(responseOutputSchema),
});

/** A request read from its body: the JSON object and the wire tensors of its inputs. */
export interface ParsedInference {
  request: InferenceRequest;
  tensors: Record<string, WireTensor>;
}

/** The boundary a body's binary part is read at: the largest element's size (8 bytes). */
const BINARY_ALIGN = 8;
/**
 * Bodies up to this size are read whole and copied once more when off the boundary: a
 * copy of a few KiB costs less than reading a stream chunk by chunk (1 MiB model, v2
 * binary, 1 client: ~24 µs a request); larger ones are read chunk by chunk into place.
 */
const SMALL_BODY = 64 * 1024;

/**
 * Reads an inference body so that its binary part (after `headerLength` bytes of JSON; a raw
 * binary request's whole body) starts at an 8-byte boundary of its buffer, where the
 * tensors are views of the body with no copy of their own: one copy in all, the one
 * `arrayBuffer()` makes too (a body up to {@link SMALL_BODY} is read whole, then copied
 * once more when off the boundary). Without binary data or a Content-Length: `arrayBuffer()`.
 */
export async function readInferenceBody(
  request: Request,
  headerLength: string | undefined,
): Promise<Uint8Array> {
  const json = headerLength !== undefined && /^\d+$/.test(headerLength.trim())
    ? Number(headerLength)
    : NaN;
  const declared = Number(request.headers.get("content-length") ?? NaN);
  if (
    !Number.isSafeInteger(json) || !Number.isSafeInteger(declared) || request.body === null ||
    request.headers.has("transfer-encoding")
  ) {
    return new Uint8Array(await request.arrayBuffer());
  }
  const pad = (BINARY_ALIGN - (json % BINARY_ALIGN)) % BINARY_ALIGN;
  if (declared <= SMALL_BODY) {
    // Read whole (cheaper than a stream's chunks), then moved to the boundary when off it.
    const whole = new Uint8Array(await request.arrayBuffer());
    if (pad === 0) return whole;
    const aligned = new Uint8Array(pad + whole.length);
    aligned.set(whole, pad);
    return aligned.subarray(pad);
  }
  const buffer = new Uint8Array(pad + declared);
  let at = pad;
  for await (const chunk of request.body) {
    // Deno's server holds a body to its declared length; this guards the copy all the same.
    if (at + chunk.length > buffer.length) {
      throw new HttpError(
        400,
        "bad_body",
        `The body is longer than its Content-Length ${declared}`,
      );
    }
    buffer.set(chunk, at);
    at += chunk.length;
  }
  return buffer.subarray(pad, at);
}

/**
 * Reads an inference body: JSON alone, or (with `headerLength`, the
 * Inference-Header-Content-Length value) a JSON header followed by each binary input's
 * `binary_data_size` bytes in input order. Throws a 400 naming the field or input at fault.
 */
export function parseInferenceBody(
  body: Uint8Array,
  headerLength: string | undefined,
  header?: { json: unknown },
): ParsedInference {
  const jsonEnd = inferenceHeaderEnd(body, headerLength);
  let json: unknown;
  if (header) json = header.json;
  else {
    try {
      json = JSON.parse(new TextDecoder().decode(body.subarray(0, jsonEnd)));
    } catch (error) {
      throw badHeaderJson(error as Error, body, headerLength);
    }
  }
  const parsed = inferenceRequestSchema.safeParse(json);
  if (!parsed.success) throw new HttpError(400, "bad_body", describeIssues(parsed.error, "field"));
  const request = parsed.data;
  const binary = body.subarray(jsonEnd);
  // Without a prototype: an input named "__proto__" is a name like any other.
  const tensors: Record<string, WireTensor> = Object.create(null);
  const jsonInputs: Record<string, JsonTensorInput> = Object.create(null);
  let at = 0;
  for (const input of request.inputs) {
    const { name, shape, datatype } = input;
    if (Object.hasOwn(tensors, name) || Object.hasOwn(jsonInputs, name)) {
      throw new HttpError(400, "bad_tensor", `input "${name}" is given twice`);
    }
    const type = wireTypeOf(datatype);
    if (type === null) {
      throw new HttpError(
        400,
        "bad_tensor",
        `input "${name}": datatype "${datatype}" is not served: expected one of ${
          OIP_DATATYPE_NAMES.join(", ")
        }`,
      );
    }
    const size = input.parameters?.binary_data_size;
    if (size !== undefined) {
      if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) {
        throw new HttpError(
          400,
          "bad_tensor",
          `input "${name}": parameters.binary_data_size must be a whole number of bytes`,
        );
      }
      if (input.data !== undefined) {
        throw new HttpError(
          400,
          "bad_tensor",
          `input "${name}": give "data" or parameters.binary_data_size, not both`,
        );
      }
      if (at + size > binary.length) {
        throw new HttpError(
          400,
          "bad_tensor",
          `input "${name}": binary_data_size ${size} runs past the body (${
            binary.length - at
          } bytes of binary data left after the header)`,
        );
      }
      try {
        tensors[name] = {
          type,
          dims: shape,
          data: decodeTensorBytes(name, type, shape, binary.subarray(at, at + size)),
        };
      } catch (error) {
        if (error instanceof TensorBytesError) {
          throw new HttpError(400, "bad_tensor", error.message);
        }
        throw error;
      }
      at += size;
      continue;
    }
    if (input.data === undefined) {
      throw new HttpError(
        400,
        "bad_tensor",
        `input "${name}": needs "data" or parameters.binary_data_size`,
      );
    }
    if (type === "float16") {
      throw new HttpError(
        400,
        "bad_tensor",
        `input "${name}": FP16 has no JSON form; send it as binary data (parameters.binary_data_size)`,
      );
    }
    jsonInputs[name] = { type, dims: shape, data: flatten(input.data) };
  }
  if (at !== binary.length) {
    throw new HttpError(
      400,
      "bad_body",
      `${binary.length - at} bytes of binary data follow the inputs' binary_data_size in all; ` +
        `fix ${HEADER_LENGTH_HEADER} or the sizes`,
    );
  }
  // JSON inputs: the same element checks (and messages naming the input) as Headroom's own API.
  Object.assign(tensors, jsonToWire(jsonInputs));
  return { request, tensors };
}

/** True when the header says "raw binary request": the body is one input's bytes, no JSON. */
export function isRawBinary(headerLength: string | undefined): boolean {
  return headerLength !== undefined && /^0+$/.test(headerLength.trim());
}

/** One declared input of a model, as its signature gives it (a string or -1 is a free dimension). */
export interface DeclaredInput {
  name: string;
  type: string | null;
  dims: ReadonlyArray<number | string>;
}

/**
 * Reads a raw binary request (Triton's binary data extension, `Inference-Header-Content-Length:
 * 0`): the whole body is the raw bytes of the model's one input, its datatype and shape taken
 * from the model. A free first dimension is the batch: 1 when another dimension is free too,
 * as the extension treats such a request as batch 1; at most one free dimension is then left,
 * and it is deduced from the byte count. A BYTES input has shape [1]. Every output is asked for
 * as binary data, as the extension says. Throws a 400 naming what is missing when the model
 * does not qualify (not one input, an unknown type, more than one free dimension, a byte count
 * that does not fit).
 */
export function parseRawBinaryBody(
  modelName: string,
  inputs: readonly DeclaredInput[],
  body: Uint8Array,
): ParsedInference {
  function fail(message: string): never {
    throw new HttpError(
      400,
      "bad_raw_binary",
      `model "${modelName}": ${message}; or send the JSON inference header (` +
        `${HEADER_LENGTH_HEADER} its length) with the input's "shape" and "datatype"`,
    );
  }
  if (body.length === 0) fail(`a raw binary request (${HEADER_LENGTH_HEADER}: 0) has no bytes`);
  if (inputs.length !== 1) {
    fail(
      inputs.length === 0
        ? `its inputs are not known yet (its file is not there), so a raw binary request ` +
          `(${HEADER_LENGTH_HEADER}: 0) cannot name its shape`
        : `a raw binary request (${HEADER_LENGTH_HEADER}: 0) needs a model with one input, and ` +
          `it has ${inputs.length} (${inputs.map((i) => `"${i.name}"`).join(", ")})`,
    );
  }
  const [input] = inputs;
  const type = input.type !== null && isTensorType(input.type) ? input.type : null;
  if (type === null) fail(`input "${input.name}" does not declare a tensor type the server knows`);
  const free = (d: number | string) => typeof d !== "number" || d < 0;
  const dims: Array<number | null> = input.dims.map((d) => free(d) ? null : d as number);
  if (type === "string") {
    const shape = dims.map((d) => d ?? 1);
    if (elementCount(shape) !== 1) {
      fail(`BYTES input "${input.name}" has shape [${input.dims.join(", ")}]; a raw one needs [1]`);
    }
    return rawRequest(modelName, input.name, type, shape, body);
  }
  if (dims.length > 1 && dims[0] === null && dims.slice(1).some((d) => d === null)) dims[0] = 1;
  const open = dims.flatMap((d, i) => d === null ? [i] : []);
  if (open.length > 1) {
    fail(
      `input "${input.name}" has shape [${input.dims.join(", ")}], with ${open.length} free ` +
        `dimensions (at ${open.join(", ")}); a raw binary request can leave one free, whose size ` +
        "the byte count gives",
    );
  }
  const rowBytes = elementCount(dims.map((d) => d ?? 1)) * ELEMENT_BYTES[type];
  if (open.length === 1) {
    if (rowBytes === 0 || body.length % rowBytes !== 0) {
      fail(
        `input "${input.name}" of shape [${input.dims.join(", ")}] takes a multiple of ` +
          `${rowBytes} bytes (${type}), but ${body.length} were sent`,
      );
    }
    dims[open[0]] = rowBytes === 0 ? 0 : body.length / rowBytes;
  }
  return rawRequest(modelName, input.name, type, dims as number[], body);
}

/** The request a raw binary body stands for, and its one tensor (a size mismatch is a 400). */
function rawRequest(
  modelName: string,
  name: string,
  type: TensorType,
  shape: number[],
  body: Uint8Array,
): ParsedInference {
  const tensors: Record<string, WireTensor> = Object.create(null);
  try {
    tensors[name] = { type, dims: shape, data: decodeTensorBytes(name, type, shape, body) };
  } catch (error) {
    if (error instanceof TensorBytesError) {
      throw new HttpError(400, "bad_tensor", `model "${modelName}": ${error.message}`);
    }
    throw error;
  }
  const request: InferenceRequest = {
    inputs: [{ name, shape, datatype: OIP_DATATYPES[type] }],
    parameters: { binary_data_output: true },
  };
  return { request, tensors };
}

/**
 * Nested `data` in row-major order, flattened. Flat data (its first element is no array) is
 * taken as it is, not copied: an array further in is then refused by the element checks,
 * naming its index.
 */
function flatten(data: TensorData | Float64Array<ArrayBuffer>): JsonTensorInput["data"] {
  if (data instanceof Float64Array) return data; // lifted while parsing: flat already
  const values = data as unknown[];
  if (values.length === 0 || !Array.isArray(values[0])) {
    return values as Array<number | string | boolean>;
  }
  return values.flat(Infinity) as Array<number | string | boolean>;
}

/** Where an inference body's JSON ends: its header length, or the whole body without one. */
function inferenceHeaderEnd(body: Uint8Array, headerLength: string | undefined): number {
  if (headerLength === undefined) return body.length;
  const length = /^\d+$/.test(headerLength.trim()) ? Number(headerLength) : NaN;
  if (!Number.isSafeInteger(length) || length > body.length) {
    throw new HttpError(
      400,
      "bad_header",
      `${HEADER_LENGTH_HEADER} "${headerLength}" must be a whole number of bytes up to the body's ${body.length}`,
    );
  }
  if (length === 0) {
    throw new Error(
      `${HEADER_LENGTH_HEADER} 0 is a raw binary request: read it with parseRawBinaryBody`,
    );
  }
  return length;
}

function badHeaderJson(
  error: Error,
  body: Uint8Array,
  headerLength: string | undefined,
): HttpError {
  return new HttpError(
    400,
    "bad_json",
    `The inference header is not valid JSON: ${error.message}` +
      (headerLength === undefined && body.length > 0
        ? `; binary tensor data needs the ${HEADER_LENGTH_HEADER} header`
        : ""),
  );
}

/**
 * The JSON header of a large inference body (from {@link OFF_THREAD_MIN_BYTES}) parsed in a
 * body worker, its long flat `data` arrays handed back as Float64Arrays, so the main thread
 * never parses megabytes of JSON numbers; null for a smaller one (parsed where it is read).
 * Pass the answer to {@link parseInferenceBody}.
 */
export async function parseLargeInferenceHeader(
  body: Uint8Array,
  headerLength: string | undefined,
): Promise<{ json: unknown } | null> {
  const jsonEnd = inferenceHeaderEnd(body, headerLength);
  if (jsonEnd < OFF_THREAD_MIN_BYTES) return null;
  try {
    // A copy of the JSON part moves to the worker; the binary part stays in `body`.
    const json = await parseJsonOffThread([body.slice(0, jsonEnd)], {
      numbers: ["inputs.*.data"],
    });
    return { json };
  } catch (error) {
    if (error instanceof SyntaxError) throw badHeaderJson(error, body, headerLength);
    throw error;
  }
}

/** A response: its JSON part and the binary outputs' bytes to send after it, in output order. */
export interface InferenceAnswer {
  json: z.infer<typeof inferenceResponseSchema>;
  binary: Uint8Array[];
}

/**
 * The response for `request`'s outputs: those it names (all, in the model's order, when
 * it names none), each as binary data when its `binary_data` parameter (else the request's
 * `binary_data_output`) says so. A named output the model does not have is a 400.
 */
export function inferenceAnswer(
  modelName: string,
  request: InferenceRequest,
  outputs: Record<string, WireTensor>,
): InferenceAnswer {
  const wanted: NonNullable<InferenceRequest["outputs"]> = request.outputs ??
    Object.keys(outputs).map((name) => ({ name }));
  const allBinary = request.parameters?.binary_data_output === true;
  const json: InferenceAnswer["json"] = {
    model_name: modelName,
    model_version: "1",
    ...(request.id !== undefined ? { id: request.id } : {}),
    outputs: [],
  };
  const binary: Uint8Array[] = [];
  for (const { name, parameters } of wanted) {
    const tensor = Object.hasOwn(outputs, name) ? outputs[name] : undefined;
    if (!tensor) {
      throw new HttpError(
        400,
        "bad_output",
        `output "${name}" is not an output of model "${modelName}": expected one of ${
          Object.keys(outputs).map((n) => `"${n}"`).join(", ")
        }`,
      );
    }
    const head = { name, shape: tensor.dims, datatype: OIP_DATATYPES[tensor.type] };
    const asBinary = typeof parameters?.binary_data === "boolean"
      ? parameters.binary_data
      : allBinary;
    if (asBinary) {
      const bytes = encodeTensorBytes(tensor);
      binary.push(bytes);
      json.outputs.push({ ...head, parameters: { binary_data_size: bytes.length } });
    } else {
      json.outputs.push({ ...head, data: jsonData(tensor) });
    }
  }
  return { json, binary };
}

/** A tensor's data as protocol JSON: BOOL as booleans, FP16 as numbers, 64-bit as numbers when safe. */
function jsonData(tensor: WireTensor): Array<number | string | boolean> {
  if (tensor.type === "bool") return Array.from(tensor.data as Uint8Array, (v) => v !== 0);
  if (tensor.type === "float16") return Array.from(tensor.data as Uint16Array, halfToNumber);
  return wireToJson({ t: tensor }).t.data;
}

/** An IEEE 754 half-precision bit pattern as a number. */
function halfToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 31) return fraction ? NaN : sign * Infinity;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

/**
 * The HTTP response for an answer: JSON alone when no output is binary, else the JSON
 * header and the outputs' bytes as `application/octet-stream` with the header's length in
 * Inference-Header-Content-Length.
 */
export function answerResponse(answer: InferenceAnswer): Response {
  const text = JSON.stringify(answer.json);
  if (answer.binary.length === 0) {
    // The text as it is: the server encodes it once, where it writes it.
    return new Response(text, { headers: { "Content-Type": "application/json" } });
  }
  const header = new TextEncoder().encode(text);
  const body = new Uint8Array(
    header.length + answer.binary.reduce((sum, part) => sum + part.length, 0),
  );
  body.set(header, 0);
  let at = header.length;
  for (const part of answer.binary) {
    body.set(part, at);
    at += part.length;
  }
  return new Response(body, {
    headers: {
      "Content-Type": "application/octet-stream",
      [HEADER_LENGTH_HEADER]: String(header.length),
    },
  });
}
