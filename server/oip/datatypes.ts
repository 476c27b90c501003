/**
 * The Open Inference Protocol's tensor datatype names (FP32, INT64, BYTES, …) for the wire's
 * element types: one table, derived names both ways, so an unknown name is refused with the
 * list of those Headroom serves.
 * @module
 */
import { TENSOR_TYPES, type TensorType } from "../../core/pipelines/protocol.ts";

/** The protocol's name of each wire element type (BYTES is ONNX's string tensor). */
export const OIP_DATATYPES = {
  float32: "FP32",
  float16: "FP16",
  float64: "FP64",
  int32: "INT32",
  int64: "INT64",
  int16: "INT16",
  uint8: "UINT8",
  uint16: "UINT16",
  uint32: "UINT32",
  uint64: "UINT64",
  int8: "INT8",
  bool: "BOOL",
  string: "BYTES",
} as const satisfies Record<TensorType, string>;

/** One protocol datatype name. */
export type OipDatatype = typeof OIP_DATATYPES[TensorType];

const BY_NAME = new Map<string, TensorType>(
  TENSOR_TYPES.map((type) => [OIP_DATATYPES[type], type]),
);

/** Every datatype name Headroom serves, in the wire list's order. */
export const OIP_DATATYPE_NAMES: readonly OipDatatype[] = TENSOR_TYPES.map((t) => OIP_DATATYPES[t]);

/** The wire type of a protocol datatype name, or null when Headroom does not serve it (BF16). */
export function wireTypeOf(datatype: string): TensorType | null {
  return BY_NAME.get(datatype) ?? null;
}
