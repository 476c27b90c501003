/**
 * Tensors checked against the inputs a model declares, before an engine sees them: the
 * engines answer a wrong shape with errors that read as their own failures ("Invalid
 * input shape: {0,192}", "Invalid dispatch group size"), or crash. Each problem names
 * the input and, for a shape, the dimension.
 * @module
 */
import type { TensorInfo, WireTensor } from "./protocol.ts";

/**
 * A declared dimension as people read it: a free one by its name when that is a plain
 * word (`N`, `batch`), else `?` (exporters' names such as `p2o.DynamicDimension.0`).
 */
function showDim(dim: number | string): string {
  if (typeof dim === "number") return dim < 0 ? "?" : String(dim);
  return /^[A-Za-z_][A-Za-z0-9_]{0,15}$/.test(dim) ? dim : "?";
}

/** The declared shape, `[N, 3, 48, 192]`. */
export function showShape(dims: ReadonlyArray<number | string>): string {
  return `[${dims.map(showDim).join(", ")}]`;
}

/**
 * The first problem of `feeds` against the model's declared `inputs`, or null when they
 * fit: an unknown or missing input, another element type, another rank, a fixed dimension
 * of another size, a dimension of 0 (no model here computes on an empty tensor; a model
 * that declares a fixed 0 may take one), or data of another length than the dims hold.
 */
export function feedProblem(
  inputs: readonly TensorInfo[],
  feeds: Readonly<Record<string, WireTensor>>,
): string | null {
  const expected = new Map(inputs.map((info) => [info.name, info]));
  for (const name of Object.keys(feeds)) {
    if (!expected.has(name)) {
      return `Unknown input "${name}": expected ${
        [...expected.keys()].map((n) => `"${n}"`).join(", ")
      }`;
    }
  }
  for (const info of inputs) {
    const tensor = feeds[info.name];
    if (!tensor) return `Missing input "${info.name}"`;
    if (info.type && tensor.type !== info.type) {
      return `Input "${info.name}" has type ${tensor.type}: expected ${info.type}`;
    }
    const dims = tensor.dims;
    const shown = `Input "${info.name}" has dims [${dims.join(", ")}]`;
    const bad = dims.findIndex((d) => !Number.isInteger(d) || d < 0);
    if (bad >= 0) return `${shown}: dimension ${bad} is not a whole number ≥ 0`;
    // A declared shape of [] is a scalar or a shape the session does not tell.
    if (info.dims.length > 0) {
      const declared = showShape(info.dims);
      if (dims.length !== info.dims.length) {
        return `${shown}: expected ${declared} (${info.dims.length} dimensions, not ${dims.length})`;
      }
      for (const [i, want] of info.dims.entries()) {
        const fixed = typeof want === "number" && want >= 0;
        if (fixed && dims[i] !== want) {
          return `${shown}: expected ${declared} (dimension ${i} is ${dims[i]}, not ${want})`;
        }
        if (!fixed && dims[i] === 0) {
          return `${shown}: dimension ${i} is 0; the model declares ${declared} and computes ` +
            `nothing on an empty tensor: give dimension ${i} at least 1`;
        }
      }
    }
    const count = dims.reduce((a, b) => a * b, 1);
    if (tensor.data?.length !== count) {
      return `Input "${info.name}" has ${tensor.data?.length} elements: dims [${
        dims.join(", ")
      }] need ${count}`;
    }
  }
  return null;
}
