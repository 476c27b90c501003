/**
 * Small helpers for the plugins' tensors on the wire.
 * @module
 */
import type { WireTensor } from "../core/pipelines/protocol.ts";

/** A float32 wire tensor. */
export function float32(dims: number[], data: Float32Array): WireTensor {
  return { type: "float32", dims, data };
}

/**
 * The output `name`, or the session's only output when the name differs (a re-exported
 * model may rename it); throws when neither is there or it is not float32.
 */
export function floatOutput(
  outputs: Record<string, WireTensor>,
  name: string,
  model: string,
): { dims: number[]; data: Float32Array } {
  const values = Object.values(outputs);
  const tensor = outputs[name] ?? (values.length === 1 ? values[0] : undefined);
  if (tensor === undefined || !(tensor.data instanceof Float32Array)) {
    throw new Error(
      `The ${model} model gave no float32 output "${name}"; it gave ${
        Object.keys(outputs).join(", ") || "none"
      }`,
    );
  }
  return { dims: tensor.dims, data: tensor.data };
}
