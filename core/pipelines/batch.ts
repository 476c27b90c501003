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

/**
 * The callers a run just answered, with those still waiting when it ended: the rows the
 * next turn expects. A client in a loop sends its next request as soon as it has its
 * answer, so the answered callers are likely back within moments.
 */
export interface ReturningCallers {
  /** Rows the run answered plus the rows waiting when it ended. */
  rows: number;
  /** Until when they are expected back (`performance.now()` ms): the run's end plus its own duration. */
  until: number;
}

/**
 * Until when (`performance.now()` ms) a turn holding `rows` rows waits for more before it
 * runs; a time already past means "run now". The wait ends early when the turn reaches
 * its limit, and otherwise lasts:
 * - `delayMs` after the turn's first request arrived (the models file's wait, 0 by default);
 * - and, while fewer rows wait than `returning` expects, until those callers are due
 *   back. Running the first of them alone would make the rest wait a whole run behind it
 *   (16 clients in a loop batched 1, 15, 1, 15… before this rule, or settled into two
 *   halves of 8 when only the answered rows counted). The wait is no longer than the last
 *   run took, and an idle pipeline never waits: its callers are no longer expected.
 */
export function batchWaitUntil(
  turn: { firstArrivedAt: number; rows: number; limit: number; delayMs: number },
  returning: ReturningCallers | null,
): number {
  if (turn.rows >= turn.limit) return -Infinity;
  const own = turn.firstArrivedAt + turn.delayMs;
  const expected = returning ? Math.min(turn.limit, returning.rows) : 0;
  return turn.rows < expected ? Math.max(own, returning!.until) : own;
}

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
