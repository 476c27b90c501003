/**
 * Generated ONNX models of a requested weight size, for load tests and GPU-path tests
 * without shipping real models: a chain of MatMul + Add (+ Relu) layers of width `W`
 * with seeded float32 weights, input `input` float32 [N, W], output `output` [N, W].
 *
 * The protobuf is written in pieces (model header, graph header, then one initializer
 * at a time) with onnx-proto's encoder, so a multi-GB file needs about one layer of
 * memory. Note: onnxruntime refuses a protobuf model over 2 GiB and the wasm heap is
 * 4 GiB, so files that large are only useful as raw bytes on disk.
 * @module
 */
import protoRoot from "onnx-proto";
import type { onnx as OnnxNamespace } from "onnx-proto";
import { prng } from "../random.ts";

// onnx-proto is CommonJS (`module.exports = $root`): the namespace lives on the default export.
const onnx = (protoRoot as unknown as { onnx: typeof OnnxNamespace }).onnx;

const UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  kib: 2 ** 10,
  mb: 1e6,
  mib: 2 ** 20,
  gb: 1e9,
  gib: 2 ** 30,
};

/** Parses a size such as "256MiB", "1.5 GB" or "4096" (bytes) into a whole number of bytes. */
export function parseSyntheticSize(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const factor = match ? UNITS[(match[2] || "b").toLowerCase()] : undefined;
  if (!match || factor === undefined) {
    throw new RangeError(
      `Invalid model size "${text}": expected a number with B, KB, KiB, MB, MiB, GB or GiB (e.g. "256MiB")`,
    );
  }
  const bytes = Math.round(Number(match[1]) * factor);
  if (bytes < 64) {
    throw new RangeError(`Invalid model size "${text}": at least 64 bytes of weights are needed`);
  }
  return bytes;
}

/** Formats bytes as the shortest exact binary label ("256MiB", "1GiB", "1000B"), for file names. */
export function formatSyntheticSize(bytes: number): string {
  for (const [unit, factor] of [["GiB", 2 ** 30], ["MiB", 2 ** 20], ["KiB", 2 ** 10]] as const) {
    if (bytes >= factor && bytes % factor === 0) return `${bytes / factor}${unit}`;
  }
  return `${bytes}B`;
}

/** The shape of a generated model: `layers` square layers of `width`, and their weight bytes. */
export interface SyntheticPlan {
  width: number;
  layers: number;
  /** Bytes of all initializers (weights and biases) as float32. */
  weightBytes: number;
}

/** Options shared by the generators. */
export interface SyntheticOptions {
  /** PRNG seed: the same seed and size give the same bytes. Default 1. */
  seed?: number;
  /** Force a layer width (tiny GPU test models); the layer count then follows from the size. */
  width?: number;
  /** Called after each layer is written with bytes written so far and the file's total. */
  onProgress?: (written: number, total: number) => void;
}

/** What {@link writeSyntheticModel} wrote. */
export interface SyntheticModelInfo extends SyntheticPlan {
  path: string;
  /** Size of the file on disk. */
  fileBytes: number;
}

function baseWidth(bytes: number): number {
  if (bytes <= 16 * 2 ** 20) return 256;
  if (bytes <= 64 * 2 ** 20) return 512;
  if (bytes <= 256 * 2 ** 20) return 1024;
  if (bytes <= 2 ** 30) return 2048;
  return 4096;
}

/**
 * Picks width and layer count for `bytes` of weights: the layer count from a round base
 * width, then, if that total is off by more than 0.5 %, the width nearest the request.
 */
export function planSyntheticModel(bytes: number, width?: number): SyntheticPlan {
  const perLayer = (w: number) => 4 * (w * w + w);
  let w = width ?? baseWidth(bytes);
  if (!Number.isInteger(w) || w < 1) {
    throw new RangeError(`Invalid width ${w}: expected a positive integer`);
  }
  let layers = Math.max(1, Math.round(bytes / perLayer(w)));
  // A round base width when it lands within 0.5 % of the request, else the nearest width.
  if (width === undefined && Math.abs(layers * perLayer(w) - bytes) > bytes * 0.005) {
    // Solve 4·L·(w² + w) = bytes for w, then keep the nearer integer.
    const exact = (-1 + Math.sqrt(1 + bytes / layers)) / 2;
    const lo = Math.max(1, Math.floor(exact));
    w = Math.abs(layers * perLayer(lo) - bytes) <= Math.abs(layers * perLayer(lo + 1) - bytes)
      ? lo
      : lo + 1;
    layers = Math.max(1, Math.round(bytes / perLayer(w)));
  }
  return { width: w, layers, weightBytes: layers * perLayer(w) };
}

// protobufjs Writer from onnx-proto's own runtime (an empty message encodes to nothing).
const writer = () => onnx.OperatorSetIdProto.encode({});
/** Tag and length of a length-delimited field (wire type 2). */
const frame = (field: number, length: number): Uint8Array =>
  writer().uint32((field << 3) | 2).uint64(length).finish();

const MODEL_GRAPH = 7; // ModelProto.graph
const GRAPH_INITIALIZER = 5; // GraphProto.initializer
const TENSOR_RAW_DATA = 9; // TensorProto.raw_data

function valueInfo(name: string, width: number): OnnxNamespace.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: onnx.TensorProto.DataType.FLOAT,
        shape: { dim: [{ dimParam: "N" }, { dimValue: width }] },
      },
    },
  };
}

interface Layout {
  /** Model header, graph frame and graph header: everything before the first initializer. */
  head: Uint8Array[];
  tensors: Array<{ dims: number[]; dataBytes: number; frames: Uint8Array[] }>;
  /** Size of the whole file. */
  fileBytes: number;
}

/** Encodes every header of the file (weights excluded) and works out the exact lengths. */
function layout(plan: SyntheticPlan): Layout {
  const { width, layers } = plan;
  const nodes: OnnxNamespace.INodeProto[] = [];
  let x = "input";
  for (let i = 0; i < layers; i++) {
    const last = i === layers - 1;
    const out = last ? "output" : `h${i}`;
    nodes.push({ opType: "MatMul", input: [x, `w${i}`], output: [`m${i}`], name: `matmul${i}` });
    nodes.push({
      opType: "Add",
      input: [`m${i}`, `b${i}`],
      output: [last ? out : `a${i}`],
      name: `add${i}`,
    });
    // No Relu on the last layer, so outputs keep their sign.
    if (!last) nodes.push({ opType: "Relu", input: [`a${i}`], output: [out], name: `relu${i}` });
    x = out;
  }
  const modelHead = onnx.ModelProto.encode({
    irVersion: 8,
    producerName: "headroom-synthetic",
    opsetImport: [{ domain: "", version: 13 }],
  }).finish();
  const graphHead = onnx.GraphProto.encode({
    name: "synthetic",
    node: nodes,
    input: [valueInfo("input", width)],
    output: [valueInfo("output", width)],
  }).finish();

  const tensors: Layout["tensors"] = [];
  let graphBytes = graphHead.length;
  for (let i = 0; i < layers; i++) {
    for (const [name, dims] of [[`w${i}`, [width, width]], [`b${i}`, [width]]] as const) {
      const dataBytes = dims.reduce((a, b) => a * b, 1) * 4;
      const head = onnx.TensorProto.encode({
        name,
        dims: [...dims],
        dataType: onnx.TensorProto.DataType.FLOAT,
      }).finish();
      const raw = frame(TENSOR_RAW_DATA, dataBytes);
      const tensorBytes = head.length + raw.length + dataBytes;
      const outer = frame(GRAPH_INITIALIZER, tensorBytes);
      graphBytes += outer.length + tensorBytes;
      tensors.push({ dims: [...dims], dataBytes, frames: [outer, head, raw] });
    }
  }
  const graphFrame = frame(MODEL_GRAPH, graphBytes);
  return {
    head: [modelHead, graphFrame, graphHead],
    tensors,
    fileBytes: modelHead.length + graphFrame.length + graphBytes,
  };
}

/** Yields the model file in pieces; at most one tensor's weights are alive at a time. */
function* modelChunks(plan: SyntheticPlan, seed: number): Generator<Uint8Array> {
  const { head, tensors } = layout(plan);
  yield* head;
  const random = prng(seed);
  // He-style uniform init keeps activations' scale roughly constant through the Relu chain.
  const limit = Math.sqrt(6 / plan.width);
  for (const tensor of tensors) {
    const values = new Float32Array(tensor.dataBytes / 4);
    const scale = tensor.dims.length === 2 ? limit : 0.01;
    for (let j = 0; j < values.length; j++) values[j] = (random() * 2 - 1) * scale;
    yield* tensor.frames;
    // Float32Array is little-endian on every platform Deno runs on, as raw_data requires.
    yield new Uint8Array(values.buffer);
  }
}

/** Builds a model of about `bytes` weight bytes in memory; for small models (tests, fixtures). */
export function syntheticModelBytes(
  bytes: number,
  seedOrOptions: number | SyntheticOptions = {},
): Uint8Array {
  const options = typeof seedOrOptions === "number" ? { seed: seedOrOptions } : seedOrOptions;
  const plan = planSyntheticModel(bytes, options.width);
  const chunks = [...modelChunks(plan, options.seed ?? 1)];
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

/**
 * Writes a model of about `bytes` weight bytes to `path`, streaming layer by layer, into a
 * temporary file renamed into place at the end (readers never see half a model).
 */
export async function writeSyntheticModel(
  path: string,
  bytes: number,
  options: SyntheticOptions = {},
): Promise<SyntheticModelInfo> {
  const plan = planSyntheticModel(bytes, options.width);
  const total = layout(plan).fileBytes;
  const temp = `${path}.${Deno.pid}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  const file = await Deno.open(temp, { write: true, createNew: true });
  let written = 0;
  try {
    for (const chunk of modelChunks(plan, options.seed ?? 1)) {
      for (let off = 0; off < chunk.length;) off += await file.write(chunk.subarray(off));
      written += chunk.length;
      // Report once per weight matrix (the big chunks), not per header.
      if (chunk.length >= plan.width * 4) options.onProgress?.(written, total);
    }
    await file.sync();
    file.close();
    await Deno.rename(temp, path);
  } catch (error) {
    try {
      file.close();
    } catch { /* already closed */ }
    await Deno.remove(temp).catch(() => {});
    throw error;
  }
  return { path, fileBytes: written, ...plan };
}

/**
 * Returns `dir/synthetic-<size>.onnx`, writing it first if it is not there yet (later calls
 * and other processes reuse it). `spec` is a size string ("256MiB") or bytes.
 */
export async function ensureSyntheticModel(
  dir: string,
  spec: string | number,
  options: SyntheticOptions = {},
): Promise<SyntheticModelInfo> {
  const bytes = typeof spec === "number" ? spec : parseSyntheticSize(spec);
  const label = formatSyntheticSize(bytes);
  const widthTag = options.width ? `-w${options.width}` : "";
  const seedTag = options.seed !== undefined && options.seed !== 1 ? `-s${options.seed}` : "";
  const path = `${dir.replace(/\/+$/, "")}/synthetic-${label}${widthTag}${seedTag}.onnx`;
  const plan = planSyntheticModel(bytes, options.width);
  const expected = layout(plan).fileBytes;
  try {
    const stat = await Deno.stat(path);
    if (stat.isFile && stat.size === expected) return { path, fileBytes: stat.size, ...plan };
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  await Deno.mkdir(dir, { recursive: true });
  return await writeSyntheticModel(path, bytes, options);
}
