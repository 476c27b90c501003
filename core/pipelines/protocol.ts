/**
 * The typed message protocol between the PipelineManager (main thread) and one
 * pipeline worker. Every request carries an `id`; the worker answers each with a
 * reply of the same `id`. Errors travel as data, never as thrown exceptions.
 * Tensors travel as typed arrays in transfer lists (see {@link transferablesOf}).
 * @module
 */

/** Where a session should run: "gpu" = onnxruntime-web webgpu EP, "cpu" = the CPU engine. */
export type SessionDevice = "gpu" | "cpu";

/**
 * The engine behind CPU placement: "native" = onnxruntime-node's CPU EP (no size limit
 * beyond RAM), "wasm" = onnxruntime-web's wasm EP (the fallback: 4 GiB heap).
 */
export type CpuEngine = "native" | "wasm";

/** The engine a session runs on: the CPU engines, or onnxruntime-web's webgpu EP. */
export type SessionEngine = CpuEngine | "webgpu";

/**
 * Element types accepted on the wire (the onnxruntime tensor type names, the same in
 * onnxruntime-web and onnxruntime-node): the one list. The HTTP layer's schemas, the Open
 * Inference Protocol's datatype names (server/oip/datatypes.ts) and the worker's checks are
 * derived from it. `string` is ONNX's string tensor (the protocol's BYTES), held as `string[]`.
 */
export const TENSOR_TYPES = [
  "float32",
  "float16",
  "float64",
  "int32",
  "int64",
  "int16",
  "uint8",
  "uint16",
  "uint32",
  "uint64",
  "int8",
  "bool",
  "string",
] as const;

/** One element type on the wire. */
export type TensorType = typeof TENSOR_TYPES[number];

/** An element type held in a typed array: every type but `string`. */
export type NumericTensorType = Exclude<TensorType, "string">;

/**
 * The typed array that holds each numeric element type's data (onnxruntime's mapping:
 * float16 as raw 16-bit words, bool as one byte per element); `string` data is `string[]`.
 */
export const TENSOR_ARRAYS = {
  float32: Float32Array,
  float16: Uint16Array,
  float64: Float64Array,
  int32: Int32Array,
  int64: BigInt64Array,
  int16: Int16Array,
  uint8: Uint8Array,
  uint16: Uint16Array,
  uint32: Uint32Array,
  uint64: BigUint64Array,
  int8: Int8Array,
  bool: Uint8Array,
} as const satisfies Record<NumericTensorType, new (length: number) => TypedTensorData>;

/** The data of a numeric tensor: one of the typed arrays of {@link TENSOR_ARRAYS}. */
export type TypedTensorData =
  | Float32Array
  | Float64Array
  | Uint16Array
  | Int16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array
  | Uint8Array
  | Int8Array;

/** True when `type` names a wire element type. */
export function isTensorType(type: string): type is TensorType {
  return (TENSOR_TYPES as readonly string[]).includes(type);
}

/** A tensor as it crosses the worker boundary: its buffer is transferred, not copied. */
export interface WireTensor {
  type: TensorType;
  dims: number[];
  /** A typed array for numeric types; `string[]` for `string` (structured-cloned, not transferred). */
  data: TypedTensorData | string[];
}

/** Name and shape of one model input or output, as the session reports it. */
export interface TensorInfo {
  name: string;
  /** Element type, or null where the session does not say. */
  type: TensorType | null;
  /** Dimensions; a string or -1 names a free (symbolic) dimension. */
  dims: Array<number | string>;
}

/** Everything a worker needs to own one pipeline. Sent once, with `init`. */
export interface PipelineSpec {
  /** Catalog id of the model ("ocr-det", "synthetic-64MiB"). */
  modelId: string;
  /** Absolute path of the .onnx file the worker reads (it has read access to it only). */
  modelPath: string;
  /** Its external data files (location as the model names it, absolute path); may be empty. */
  externalData: Array<{ location: string; path: string }>;
  /** Graph file + external data, in bytes: what the native engine holds as weights. */
  modelBytes: number;
  /** The engine for CPU placement. */
  cpuEngine: CpuEngine;
  /** onnxruntime-node's package folder (for the native engine), or null. */
  ortNodeDir: string | null;
  /** Intra-op threads of the native engine. */
  cpuThreads: number;
  /** Absolute file URL of a plugin module, or null for plain tensor in/out. */
  pluginUrl: string | null;
  /** Extra files the plugin needs, by name (for example `keys` → ppocr_keys_v1.txt). */
  assets: Record<string, string>;
  /** Threads for the wasm EP (the WebGPU build only works with 1). */
  numThreads: number;
  /**
   * Above this many model bytes the parity check does not create a session of its own: it
   * runs at the first offload, while the GPU session and the new CPU session both exist.
   */
  parityAtLoadMaxBytes: number;
}

/**
 * What a pipeline runs: raw tensors, or a plugin's own input (an image, audio), which the
 * host hands to the plugin's process; the engine worker itself only ever runs tensors.
 */
export type RunInput =
  | { kind: "tensors"; tensors: Record<string, WireTensor> }
  | { kind: "plugin"; payload: unknown };

/** Main thread → worker. */
export type WorkerRequest =
  | { id: number; type: "init"; spec: PipelineSpec }
  | { id: number; type: "load"; device: SessionDevice }
  | { id: number; type: "run"; input: RunInput }
  /**
   * GPU → CPU: release the webgpu session (every GPU buffer destroyed), then a CPU session
   * serves. With a parity check pending (deferred for a big model), the CPU session is
   * created first, the probe runs on both, and the reply carries `parity`.
   */
  | { id: number; type: "offload" }
  /** CPU → GPU: create the webgpu session again. */
  | { id: number; type: "rehydrate" }
  /** Release whatever session is open; the worker stays, ready for another `load`. */
  | { id: number; type: "unload" }
  | { id: number; type: "status" }
  /**
   * The GPU/CPU parity check: runs one probe input on the GPU session and on a temporary
   * CPU session, and compares every raw output. Needs the session on the GPU. For a model
   * above `parityAtLoadMaxBytes` it answers `parityDeferred` and runs at the next offload.
   * `probe`: the session inputs a plugin made of its probe input (recorded by the host),
   * compared in place of a generated probe.
   */
  | {
    id: number;
    type: "parity";
    tolerance: number;
    probe?: Array<Record<string, WireTensor>>;
  };

/** The worker's state, sent with every reply so the main thread never has to ask. */
export interface WorkerStatus {
  device: SessionDevice | "none";
  /** GPU buffers alive (created and not destroyed), counted by the allocation tracker. */
  gpuBuffers: number;
  /** Their total size in bytes. */
  gpuBytes: number;
  /** Largest `gpuBytes` seen since the session was created (the peak a run needs). */
  gpuPeakBytes: number;
  /** `Deno.memoryUsage().rss` read in the worker: the whole process, not the worker alone. */
  rssBytes: number;
  inputs: TensorInfo[];
  outputs: TensorInfo[];
  /** Which onnxruntime-web build this worker imported: the WebGPU one costs ~300 MB more RSS. */
  build: "wasm" | "webgpu" | "none";
  /** The engine of the open session. */
  engine: SessionEngine | "none";
  /**
   * RAM the session holds, never negative: the weights for the native engine (it maps
   * the model's files), the wasm memory size for onnxruntime-web; 0 without a session.
   */
  ramBytes: number;
}

/** What the main thread can ask a worker: the `type` of a {@link WorkerRequest}. */
export type RequestKind = WorkerRequest["type"];

/** The request of one kind. */
export type RequestOf<K extends RequestKind> = Extract<WorkerRequest, { type: K }>;

/**
 * Error codes a worker reports: the one list. "oom" means the GPU ran out of memory: the
 * caller may evict and retry. The pipeline error each becomes is in workers/manager/worker_errors.ts.
 */
export const WORKER_ERROR_CODES = [
  "oom",
  "bad_input",
  /** A tensor that does not fit the model's declared inputs (name, type, rank, a dimension). */
  "bad_tensor",
  "not_loaded",
  "load_failed",
  "run_failed",
  "no_webgpu",
  "internal",
] as const;

/** One worker error code. */
export type WorkerErrorCode = typeof WORKER_ERROR_CODES[number];

/** An error as data. */
export interface WorkerError {
  code: WorkerErrorCode;
  message: string;
}

/** What a successful `run` returns. */
export type RunOutput =
  | { kind: "tensors"; tensors: Record<string, WireTensor> }
  | { kind: "plugin"; payload: unknown };

/**
 * What a successful `parity` carries: the result, or why the check waits for the next
 * offload (the other field is then absent).
 */
export type ParityReply =
  | { parity: ParityResult; parityDeferred?: undefined }
  | { parityDeferred: string; parity?: undefined };

/**
 * The fields a successful reply carries beyond the common ones, by request kind: a
 * `run` reply always has its output, so no caller has to assert it is there.
 */
export interface Replies {
  init: Record<never, never>;
  load: Record<never, never>;
  run: { output: RunOutput };
  /** `parity` is there when the offload ran a deferred check. */
  offload: { parity?: ParityResult };
  rehydrate: Record<never, never>;
  unload: Record<never, never>;
  status: Record<never, never>;
  parity: ParityReply;
}

/** What every reply carries: the request's id and kind, the worker's status, the time. */
interface ReplyBase<K extends RequestKind> {
  id: number;
  /** The kind of the request it answers. */
  type: K;
  status: WorkerStatus;
  /** Wall time of the operation inside the worker, in ms. */
  ms: number;
}

/** Worker → main thread: a request of kind `K` succeeded. */
export type OkReply<K extends RequestKind> = ReplyBase<K> & { ok: true } & Replies[K];

/** Worker → main thread: a request of kind `K` failed (errors as data). */
export type ErrorReply<K extends RequestKind = RequestKind> = ReplyBase<K> & {
  ok: false;
  error: WorkerError;
};

/**
 * Worker → main thread: the answer to one request of kind `K` (any kind by default),
 * with the request's `id`.
 */
export type WorkerReply<K extends RequestKind = RequestKind> = {
  [P in K]: OkReply<P> | ErrorReply<P>;
}[K];

/**
 * A reply as the worker posts it: a successful `run` reply leaves its `status` out when it
 * is the status the worker last sent (a run moves no weights: most runs change nothing),
 * and the client fills it back in, so every {@link WorkerReply} past the client has one.
 * Sending and checking an unchanged status cost about 40 µs of a one-row run's round trip.
 */
export type PostedReply = WorkerReply | Omit<OkReply<"run">, "status">;

/** What the parity check found. */
export interface ParityResult {
  /** Largest absolute difference between a GPU and a CPU output element (Infinity when shapes differ). */
  maxAbsError: number;
  tolerance: number;
  /** True when every element agrees within the tolerance. */
  agrees: boolean;
  /** How many output elements were compared. */
  elements: number;
  /** Where the probe came from: the plugin's own, or generated from the input shapes. */
  probe: "plugin" | "generated";
}

/** The buffers of every tensor in a map, for `postMessage`'s transfer list. */
export function transferablesOf(tensors: Record<string, WireTensor>): ArrayBuffer[] {
  const seen = new Set<ArrayBuffer>();
  for (const tensor of Object.values(tensors)) {
    if (Array.isArray(tensor.data)) continue; // strings are cloned
    const buffer = tensor.data.buffer;
    if (buffer instanceof ArrayBuffer) seen.add(buffer);
  }
  return [...seen];
}
