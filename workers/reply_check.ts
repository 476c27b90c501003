/**
 * What the host accepts from an engine worker: every reply is checked against the
 * protocol (core/pipelines/protocol.ts) before anything reads it: the kind of the request
 * it answers, a status with numbers in range (no negative or fractional byte counts), an
 * error code from the one list, tensors whose data fits their dims. The host never
 * trusts a worker's word: a reply that fails is the worker's end (workers/client.ts).
 * @module
 */
import { z } from "zod";
import { type RequestKind, TENSOR_TYPES, WORKER_ERROR_CODES } from "../core/pipelines/protocol.ts";
import { wireTensorSchema } from "./plugin_messages.ts";

const count = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

const tensorInfo = z.object({
  name: z.string().max(1024),
  type: z.enum(TENSOR_TYPES).nullable(),
  dims: z.array(z.union([z.number().int().min(-1), z.string().max(256)])).max(64),
});

/** A worker's status: every count and byte figure a whole number from 0 up. */
export const workerStatusSchema = z.object({
  device: z.enum(["gpu", "cpu", "none"]),
  gpuBuffers: count,
  gpuBytes: count,
  gpuPeakBytes: count,
  rssBytes: count,
  inputs: z.array(tensorInfo).max(4096),
  outputs: z.array(tensorInfo).max(4096),
  build: z.enum(["wasm", "webgpu", "none"]),
  engine: z.enum(["native", "wasm", "webgpu", "none"]),
  ramBytes: count,
});

const parityResult = z.object({
  maxAbsError: z.custom<number>((v) => typeof v === "number" && v >= 0, "a number from 0 up"),
  tolerance: z.number().nonnegative(),
  agrees: z.boolean(),
  elements: count,
  probe: z.enum(["plugin", "generated"]),
});

const base = {
  id: z.number().int().positive(),
  status: workerStatusSchema,
  ms: z.number().nonnegative(),
};

const errorReply = z.object({
  ...base,
  ok: z.literal(false),
  error: z.object({ code: z.enum(WORKER_ERROR_CODES), message: z.string().max(1024 * 1024) }),
});

/** The fields a successful reply of each kind carries beyond the common ones. */
const okFields: { [K in RequestKind]: z.ZodRawShape } = {
  init: {},
  load: {},
  run: {
    output: z.object({
      kind: z.literal("tensors"),
      tensors: z.record(z.string().max(1024), wireTensorSchema),
    }),
  },
  offload: { parity: parityResult.optional() },
  rehydrate: {},
  unload: {},
  status: {},
  parity: { parity: parityResult.optional(), parityDeferred: z.string().max(4096).optional() },
};

const schemas = new Map<string, z.ZodType>();

function schemaOf(kind: RequestKind, ok: boolean): z.ZodType {
  const key = `${kind}:${ok}`;
  let schema = schemas.get(key);
  if (!schema) {
    // A run reply may leave out a status equal to the last one (PostedReply).
    const status = kind === "run" ? { status: workerStatusSchema.optional() } : {};
    schema = ok
      ? z.object({
        ...base,
        ...status,
        type: z.literal(kind),
        ok: z.literal(true),
        ...okFields[kind],
      })
      : errorReply.extend({ type: z.literal(kind) });
    schemas.set(key, schema);
  }
  return schema;
}

/**
 * Checks `raw` as the reply to a request of kind `kind`, as the worker posts it (a
 * `PostedReply`, core/pipelines/protocol.ts): null when it is one, else what is wrong with it (the first issue,
 * with its path).
 */
export function replyProblem(raw: unknown, kind: RequestKind): string | null {
  const ok = (raw as { ok?: unknown } | null)?.ok !== false;
  const parsed = schemaOf(kind, ok).safeParse(raw);
  if (parsed.success) return null;
  const issue = parsed.error.issues[0];
  return `${issue.path.join(".") || "reply"}: ${issue.message}`;
}
