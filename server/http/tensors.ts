/**
 * Tensors as JSON (`{type, dims, data}`) ↔ tensors on the wire to a worker. Shape,
 * type and size are checked here, before anything reaches a worker, with messages
 * that name the tensor.
 * @module
 */
import { z } from "zod";
import {
  TENSOR_ARRAYS,
  TENSOR_TYPES,
  type TensorType,
  type WireTensor,
} from "../../core/pipelines/protocol.ts";
import { HttpError } from "./http_error.ts";

/** Most elements one request may send in all its tensors (64 Mi elements). */
export const MAX_TENSOR_ELEMENTS = 64 * 2 ** 20;

/** The element types JSON carries: the wire's, but float16 (JSON numbers are not its bits). */
type JsonTensorType = Exclude<TensorType, "float16">;

/** {@link TENSOR_TYPES} without float16, in the same order. */
const JSON_TENSOR_TYPES = TENSOR_TYPES.filter((type): type is JsonTensorType =>
  type !== "float16"
) as [JsonTensorType, ...JsonTensorType[]];

/** A tensor as the API takes and gives it. */
export const jsonTensorSchema = z.object({
  type: z.enum(JSON_TENSOR_TYPES, { error: `must be one of ${JSON_TENSOR_TYPES.join(", ")}` }),
  dims: z.array(
    z.number().int("must hold whole numbers").min(0, "must not be negative").max(2 ** 31),
  )
    .max(8, "must have at most 8 dimensions"),
  // Checked element by element once, where it becomes a typed array (toTypedArray names the
  // element at fault), not walked and copied by zod first.
  data: z.custom<Array<number | string | boolean>>((value) => Array.isArray(value), {
    error: "must be an array of numbers, strings or booleans",
  }).meta({
    type: "array",
    items: { anyOf: [{ type: "number" }, { type: "string" }, { type: "boolean" }] },
  }),
});

/** A tensor as JSON. */
export type JsonTensor = z.infer<typeof jsonTensorSchema>;

/**
 * A tensor as a request gives it: {@link jsonTensorSchema}, whose long number `data` may
 * arrive as a Float64Array (the route's `lift.numbers`, server/http/json_body.ts).
 */
export const jsonTensorInputSchema = jsonTensorSchema.extend({
  data: z.union([jsonTensorSchema.shape.data, z.instanceof(Float64Array)]),
});

/** A tensor as a request gives it. */
export type JsonTensorInput = z.infer<typeof jsonTensorInputSchema>;

/** Turns JSON tensors into wire tensors; throws a 400 naming the tensor that is wrong. */
export function jsonToWire(
  inputs: Record<string, JsonTensorInput>,
): Record<string, WireTensor> {
  const out: Record<string, WireTensor> = {};
  let total = 0;
  for (const [name, tensor] of Object.entries(inputs)) {
    const expected = tensor.dims.reduce((a, b) => a * b, 1);
    total += tensor.data.length;
    if (total > MAX_TENSOR_ELEMENTS) {
      throw new HttpError(
        413,
        "too_large",
        `inputs: more than ${MAX_TENSOR_ELEMENTS} elements in all`,
      );
    }
    if (expected !== tensor.data.length) {
      throw new HttpError(
        400,
        "bad_tensor",
        `input "${name}": dims [${
          tensor.dims.join(", ")
        }] hold ${expected} elements but data has ${tensor.data.length}`,
      );
    }
    out[name] = { type: tensor.type, dims: tensor.dims, data: toTypedArray(name, tensor) };
  }
  return out;
}

function toTypedArray(name: string, tensor: JsonTensorInput): WireTensor["data"] {
  const bad = (i: number, what: string) =>
    new HttpError(400, "bad_tensor", `input "${name}": data[${i}] ${what}`);
  const values: ArrayLike<number | string | boolean> = tensor.data;
  switch (tensor.type) {
    case "string":
      return Array.from(values, (value, i) => {
        if (typeof value !== "string") throw bad(i, "is not a string for type string");
        // onnxruntime-node cuts a string tensor's element at a NUL character.
        if (value.includes("\0")) throw bad(i, "holds a NUL character, which the engine cuts off");
        return value;
      });
    case "int64":
    case "uint64": {
      const data = new TENSOR_ARRAYS[tensor.type](values.length);
      for (let i = 0; i < values.length; i++) {
        const value = values[i];
        if (typeof value !== "number" && typeof value !== "string") {
          throw bad(i, "is not an integer");
        }
        try {
          data[i] = BigInt(value);
        } catch {
          throw bad(i, "is not an integer");
        }
      }
      return data;
    }
    case "bool":
      return Uint8Array.from(values, (value, i) => {
        // A caller's schema may leave elements unchecked (v2's nested data): this is the check.
        if (value === null || typeof value === "object") throw bad(i, "is not a boolean");
        return value === true || value === 1 ? 1 : 0;
      });
    default: {
      const data = new TENSOR_ARRAYS[tensor.type](values.length);
      const mustBeFinite = tensor.type !== "float32"; // JSON's 1e999 reads as Infinity
      if (values instanceof Float64Array) {
        // Numbers already (lifted while parsing): one check, one native copy.
        for (let i = 0; i < values.length; i++) {
          if (mustBeFinite && !Number.isFinite(values[i])) {
            throw bad(i, `is not a number for type ${tensor.type}`);
          }
        }
        data.set(values);
        return data;
      }
      for (let i = 0; i < values.length; i++) {
        const value = values[i];
        if (typeof value !== "number" || mustBeFinite && !Number.isFinite(value)) {
          throw bad(i, `is not a number for type ${tensor.type}`);
        }
        data[i] = value;
      }
      return data;
    }
  }
}

/** Turns wire tensors into JSON ones (int64 as numbers when safe, else strings). */
export function wireToJson(tensors: Record<string, WireTensor>): Record<string, JsonTensor> {
  const out: Record<string, JsonTensor> = {};
  for (const [name, tensor] of Object.entries(tensors)) {
    const data = Array.isArray(tensor.data)
      ? [...tensor.data]
      : tensor.data instanceof BigInt64Array || tensor.data instanceof BigUint64Array
      ? Array.from<bigint, number | string>(
        tensor.data,
        (v) => (v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(-Number.MAX_SAFE_INTEGER)
          ? Number(v)
          : String(v)),
      )
      : numbersOf(tensor.data as ArrayLike<number>);
    out[name] = { type: tensor.type as JsonTensor["type"], dims: tensor.dims, data };
  }
  return out;
}

/**
 * A typed array's elements as a plain array, by index: `Array.from` walks the iterator,
 * which allocated ~45 KB of results a 512-element answer (a heap profile at 16 clients).
 */
function numbersOf(data: ArrayLike<number>): number[] {
  const out = new Array<number>(data.length);
  for (let i = 0; i < data.length; i++) out[i] = data[i];
  return out;
}
