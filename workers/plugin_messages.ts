/**
 * The messages between the host and a plugin process (framed by plugin_wire.ts), and the
 * schemas the host checks every message from a plugin against: a plugin is untrusted
 * code, so what it says is validated before anything reads it.
 * @module
 */
import { z } from "zod";
import { TENSOR_ARRAYS, TENSOR_TYPES, type WireTensor } from "../core/pipelines/protocol.ts";

/** Host → plugin process. */
export type ToPlugin =
  /** Sent once: the plugin's init, with its declared assets read by the host. */
  | { type: "init"; modelId: string; assets: Record<string, Uint8Array> }
  /** Runs `process` on a request's input, or (with `probe`) on the plugin's own probe input. */
  | { type: "process"; id: number; input?: unknown; probe?: true }
  /** The answer to one of the plugin's `infer` calls. */
  | { type: "inferred"; call: number; ok: true; outputs: Record<string, WireTensor> }
  | { type: "inferred"; call: number; ok: false; message: string };

/** Plugin process → host. */
export type FromPlugin =
  /** The plugin imported and its init ran (or why not). */
  | { type: "ready"; ok: true; probe: boolean }
  | { type: "ready"; ok: false; message: string }
  /** The plugin asks the engine to run the session once. */
  | { type: "infer"; call: number; feeds: Record<string, WireTensor> }
  /** `process` finished: its output, or why not (`inputError`: the caller's input was wrong). */
  | { type: "done"; id: number; ok: true; output: unknown }
  | { type: "done"; id: number; ok: false; inputError: boolean; message: string };

const dims = z.array(z.number().int().nonnegative().max(2 ** 31)).max(16);

/**
 * A tensor a worker or plugin sends: a known type, whole non-negative dims, and data of its
 * type's typed array (a string tensor: an array of strings) and size.
 */
export const wireTensorSchema = z.object({
  type: z.enum(TENSOR_TYPES),
  dims,
  data: z.custom<WireTensor["data"]>(
    (v) => ArrayBuffer.isView(v) || Array.isArray(v),
    "a typed array (an array of strings for a string tensor)",
  ),
}).superRefine((t, ctx) => {
  const fits = t.type === "string"
    ? Array.isArray(t.data) && t.data.every((item) => typeof item === "string")
    : t.data instanceof TENSOR_ARRAYS[t.type];
  if (!fits) {
    const expected = t.type === "string" ? "an array of strings" : TENSOR_ARRAYS[t.type].name;
    ctx.addIssue({ code: "custom", message: `${t.type} data must be ${expected}` });
    return;
  }
  const count = t.dims.reduce((a, b) => a * b, 1);
  if (t.data.length !== count) {
    ctx.addIssue({
      code: "custom",
      message: `${t.data.length} elements for dims [${t.dims}] (${count})`,
    });
  }
});

const message = z.string().max(64 * 1024);

/** Every message a plugin process may send; anything else ends it. */
export const fromPluginSchema = z.union([
  z.object({ type: z.literal("ready"), ok: z.literal(true), probe: z.boolean() }).strict(),
  z.object({ type: z.literal("ready"), ok: z.literal(false), message }).strict(),
  z.object({
    type: z.literal("infer"),
    call: z.number().int().positive(),
    feeds: z.record(z.string().max(256), wireTensorSchema),
  }).strict(),
  z.object({
    type: z.literal("done"),
    id: z.number().int().positive(),
    ok: z.literal(true),
    output: z.unknown(),
  }).strict(),
  z.object({
    type: z.literal("done"),
    id: z.number().int().positive(),
    ok: z.literal(false),
    inputError: z.boolean(),
    message,
  }).strict(),
]);
