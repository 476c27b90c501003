/**
 * Dynamic batching's arithmetic, kept pure: which models can batch (every input and
 * output has a free first dimension), which requests can share a run (the same inputs,
 * element types and every dimension but the first), and the two copies a batched run
 * costs: the callers' inputs concatenated along dimension 0, the outputs split back by
 * rows. The worker host (workers/manager/batcher.ts) decides when to batch.
 * @module
 */
import {
  TENSOR_ARRAYS,
  type TensorInfo,
  type TypedTensorData,
  type WireTensor,
} from "./protocol.ts";

/** How a pipeline batches: at most `max` rows a run, waiting up to `delayMs` for more. */
export interface BatchConfig {
  max: number;
  delayMs: number;
}

/** The default of a model that can batch and whose entry says nothing: 32 rows, no added wait. */
export const DEFAULT_BATCH: BatchConfig = { max: 32, delayMs: 0 };

/** True for a dimension the model leaves free (a name, or -1). */
function isFree(dim: number | string | undefined): boolean {
  return typeof dim === "string" || (typeof dim === "number" && dim < 0);
}

/**
 * True when a session with these inputs and outputs can run a batch: each of them has
 * a free first dimension (a model whose output shapes the session does not tell cannot
 * be split back safely, so it does not batch).
 */
export function canBatch(inputs: readonly TensorInfo[], outputs: readonly TensorInfo[]): boolean {
  const all = [...inputs, ...outputs];
  return inputs.length > 0 && outputs.length > 0 && all.every((t) => isFree(t.dims[0]));
}

/**
 * The rows of one request and the key every request it may share a run with has: the
 * input names, element types and dimensions past the first. Null when its tensors do
 * not agree on a first dimension (it then runs alone).
 */
export function batchShape(
  tensors: Readonly<Record<string, WireTensor>>,
): { rows: number; key: string } | null {
  const names = Object.keys(tensors).sort();
  let rows = -1;
  const parts: string[] = [];
  for (const name of names) {
    const { type, dims } = tensors[name];
    if (dims.length === 0) return null;
    if (rows === -1) rows = dims[0];
    else if (dims[0] !== rows) return null;
    parts.push(`${name}:${type}:${dims.slice(1).join("x")}`);
  }
  return rows > 0 ? { rows, key: parts.join("|") } : null;
}

/** The requests' tensors concatenated along dimension 0 (each request is one map, all of one key). */
export function concatRows(
  members: ReadonlyArray<Readonly<Record<string, WireTensor>>>,
): Record<string, WireTensor> {
  const out: Record<string, WireTensor> = {};
  for (const name of Object.keys(members[0])) {
    const first = members[0][name];
    const rows = members.reduce((sum, m) => sum + m[name].dims[0], 0);
    const dims = [rows, ...first.dims.slice(1)];
    if (first.type === "string") {
      out[name] = {
        type: first.type,
        dims,
        data: members.flatMap((m) => m[name].data as string[]),
      };
      continue;
    }
    const length = members.reduce((sum, m) => sum + m[name].data.length, 0);
    const data = new TENSOR_ARRAYS[first.type](length) as TypedTensorData;
    let at = 0;
    for (const m of members) {
      const part = m[name].data as TypedTensorData;
      // Every member shares the type of `first` (same key), so the typed arrays agree.
      (data as Float32Array).set(part as Float32Array, at);
      at += part.length;
    }
    out[name] = { type: first.type, dims, data };
  }
  return out;
}

/**
 * A batched run's outputs split back by rows: one map per request, in order, each with
 * its own buffers. Null when an output's first dimension is not the batch's row count
 * (the model's first dimension is not a batch dimension after all).
 */
export function splitRows(
  outputs: Readonly<Record<string, WireTensor>>,
  rows: readonly number[],
): Array<Record<string, WireTensor>> | null {
  const total = rows.reduce((a, b) => a + b, 0);
  const parts: Array<Record<string, WireTensor>> = rows.map(() => ({}));
  for (const [name, tensor] of Object.entries(outputs)) {
    if (tensor.dims.length === 0 || tensor.dims[0] !== total) return null;
    const perRow = tensor.data.length / total;
    let row = 0;
    rows.forEach((count, i) => {
      const start = row * perRow, end = (row + count) * perRow;
      const dims = [count, ...tensor.dims.slice(1)];
      parts[i][name] = { type: tensor.type, dims, data: tensor.data.slice(start, end) };
      row += count;
    });
  }
  return parts;
}
