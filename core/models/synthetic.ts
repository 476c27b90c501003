/**
 * Generated ONNX models of a requested weight size, for load tests and GPU-path tests
 * without shipping real models: a chain of MatMul + Add (+ Relu) layers of width `W`
 * with seeded float32 weights, input `input` float32 [N, W], output `output` [N, W].
 *
 * Files are written as ONNX's own tools write big models: the graph in `NAME.onnx` and
 * every weight in one external data file `NAME.onnx.data` beside it (tensors of 1 MiB or
 * more page-aligned, like `onnx.save_model(..., save_as_external_data=True)` does), so
 * sizes up to 20 GiB work; protobuf itself stops at 2 GiB. A single-file protobuf is still
 * available (`externalData: false`, `syntheticModelBytes`) for small models. Written in
 * pieces, one initializer at a time: a multi-GB model needs about one layer of memory.
 * @module
 */
import protoRoot from "onnx-proto";
import type { onnx as OnnxNamespace } from "onnx-proto";
import { statfsSync } from "node:fs";
import { dirname } from "node:path";
import { prng } from "../random.ts";
import { GRAPH_INITIALIZER, MODEL_GRAPH, TENSOR_RAW_DATA } from "./onnx_fields.ts";

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
  /** Called after each layer is written with bytes written so far and the files' total. */
  onProgress?: (written: number, total: number) => void;
  /** Stops the write (its temporary files removed) and rejects with the signal's reason. */
  signal?: AbortSignal;
  /**
   * Weights in `PATH.data` beside the graph (default true); false writes one protobuf,
   * which onnxruntime cannot read at 2 GiB or more.
   */
  externalData?: boolean;
}

/** What {@link writeSyntheticModel} wrote. */
export interface SyntheticModelInfo extends SyntheticPlan {
  path: string;
  /** Size of the files on disk (graph + external data). */
  fileBytes: number;
  /** The external data file, or null for a single-file protobuf. */
  dataPath: string | null;
}

/** The largest weight size the generators write (`--size` of `deno task gen-model`). */
export const MAX_SYNTHETIC_BYTES = 20 * 2 ** 30;

/**
 * How far a write is, for logs and progress lines: `1.25 of 4.00 GiB (31 %), 310 MiB/s`.
 * `seconds` is the time since the write began.
 */
export function formatWriteProgress(written: number, total: number, seconds: number): string {
  const rate = seconds > 0 ? `${(written / 2 ** 20 / seconds).toFixed(0)} MiB/s` : "… MiB/s";
  const pct = total > 0 ? Math.floor((100 * written) / total) : 100;
  return `${(written / 2 ** 30).toFixed(2)} of ${
    (total / 2 ** 30).toFixed(2)
  } GiB (${pct} %), ${rate}`;
}

/** Thrown when the disk cannot hold a model about to be written; the message says how much. */
export class DiskSpaceError extends Error {
  override name = "DiskSpaceError";
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

/**
 * Tensors of at least this size start at a multiple of {@link DATA_ALIGN}, the page size,
 * so onnxruntime can map them straight from the file (onnx's own writer uses 64 KiB, for
 * Windows; that padding costs ~6 % on 1 MiB layers).
 */
const ALIGN_THRESHOLD = 2 ** 20;
const DATA_ALIGN = 4096;

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
  /**
   * Each initializer: its frames in the graph file, and, for external data, where its
   * weights start in the data file (`pad` zero bytes before them keep the alignment).
   */
  tensors: Array<{ dims: number[]; dataBytes: number; frames: Uint8Array[]; pad: number }>;
  /** Size of the graph file (with the weights, for a single file). */
  fileBytes: number;
  /** Size of the external data file; 0 for a single file. */
  dataBytes: number;
}

/** Encodes every header (weights excluded) and works out the exact lengths. */
function layout(plan: SyntheticPlan, dataLocation: string | null = null): Layout {
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
  let offset = 0;
  for (let i = 0; i < layers; i++) {
    for (const [name, dims] of [[`w${i}`, [width, width]], [`b${i}`, [width]]] as const) {
      const dataBytes = dims.reduce((a, b) => a * b, 1) * 4;
      if (dataLocation === null) {
        const head = onnx.TensorProto.encode({
          name,
          dims: [...dims],
          dataType: onnx.TensorProto.DataType.FLOAT,
        }).finish();
        const raw = frame(TENSOR_RAW_DATA, dataBytes);
        const tensorBytes = head.length + raw.length + dataBytes;
        const outer = frame(GRAPH_INITIALIZER, tensorBytes);
        graphBytes += outer.length + tensorBytes;
        tensors.push({ dims: [...dims], dataBytes, frames: [outer, head, raw], pad: 0 });
        continue;
      }
      const start = dataBytes >= ALIGN_THRESHOLD
        ? Math.ceil(offset / DATA_ALIGN) * DATA_ALIGN
        : offset;
      const tensor = onnx.TensorProto.encode({
        name,
        dims: [...dims],
        dataType: onnx.TensorProto.DataType.FLOAT,
        dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
        externalData: [
          { key: "location", value: dataLocation },
          { key: "offset", value: String(start) },
          { key: "length", value: String(dataBytes) },
        ],
      }).finish();
      const outer = frame(GRAPH_INITIALIZER, tensor.length);
      graphBytes += outer.length + tensor.length;
      tensors.push({ dims: [...dims], dataBytes, frames: [outer, tensor], pad: start - offset });
      offset = start + dataBytes;
    }
  }
  const graphFrame = frame(MODEL_GRAPH, graphBytes);
  return {
    head: [modelHead, graphFrame, graphHead],
    tensors,
    fileBytes: modelHead.length + graphFrame.length + graphBytes,
    dataBytes: offset,
  };
}

/** The weights of one tensor, seeded: the same plan and seed give the same bytes. */
function* tensorValues(plan: SyntheticPlan, layout: Layout, seed: number): Generator<Uint8Array> {
  const random = prng(seed);
  // He-style uniform init keeps activations' scale roughly constant through the Relu chain.
  const limit = Math.sqrt(6 / plan.width);
  for (const tensor of layout.tensors) {
    const values = new Float32Array(tensor.dataBytes / 4);
    const scale = tensor.dims.length === 2 ? limit : 0.01;
    for (let j = 0; j < values.length; j++) values[j] = (random() * 2 - 1) * scale;
    // Float32Array is little-endian on every platform Deno runs on, as ONNX requires.
    yield new Uint8Array(values.buffer);
  }
}

/** Yields the single-file model in pieces; at most one tensor's weights are alive at a time. */
function* modelChunks(plan: SyntheticPlan, seed: number): Generator<Uint8Array> {
  const shape = layout(plan);
  yield* shape.head;
  const values = tensorValues(plan, shape, seed);
  for (const tensor of shape.tensors) {
    yield* tensor.frames;
    yield values.next().value!;
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

/** Free bytes on the file system holding `path`'s folder, or null where it cannot be read. */
export function freeDiskBytes(path: string): number | null {
  try {
    const fs = statfsSync(dirname(path));
    return Number(fs.bavail) * Number(fs.bsize);
  } catch {
    return null; // no --allow-sys=statfs, or an unusual file system: the writes will tell
  }
}

/** Bytes the files of a model of `bytes` weights take on disk. */
export function syntheticFileBytes(bytes: number, options: SyntheticOptions = {}): number {
  const plan = planSyntheticModel(bytes, options.width);
  const shape = layout(plan, options.externalData === false ? null : "x.onnx.data");
  return shape.fileBytes + shape.dataBytes;
}

/** At most this much per write call, so an abort is noticed within one such piece. */
const WRITE_PIECE = 64 * 2 ** 20;

async function writeAll(file: Deno.FsFile, chunk: Uint8Array, signal?: AbortSignal) {
  for (let off = 0; off < chunk.length;) {
    signal?.throwIfAborted();
    off += await file.write(chunk.subarray(off, off + WRITE_PIECE));
  }
}

/**
 * Writes a model of about `bytes` weight bytes to `path` (and, by default, its weights to
 * `path.data`), streaming layer by layer into temporary files renamed into place at the end
 * (readers never see half a model); on any error or an abort of `options.signal` the
 * temporary files are removed. Checks free disk space first and throws
 * {@link DiskSpaceError} naming what is needed.
 */
export async function writeSyntheticModel(
  path: string,
  bytes: number,
  options: SyntheticOptions = {},
): Promise<SyntheticModelInfo> {
  const plan = planSyntheticModel(bytes, options.width);
  const external = options.externalData !== false;
  // Checked on the weights alone first: the headers of an absurd size would not fit in memory.
  const free = freeDiskBytes(path);
  const enough = (needed: number) => {
    if (free !== null && free < needed + 64 * 2 ** 20) {
      throw new DiskSpaceError(
        `Not enough disk space for ${path}: the model needs ${gib(needed)} and ${
          dirname(path)
        } has ${gib(free)} free; free some space or write it elsewhere`,
      );
    }
  };
  enough(plan.weightBytes);
  const dataName = `${path.slice(path.lastIndexOf("/") + 1)}.data`;
  const shape = layout(plan, external ? dataName : null);
  const total = shape.fileBytes + shape.dataBytes;
  enough(total);
  const tag = `${Deno.pid}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  const temps = [`${path}.${tag}`, ...(external ? [`${path}.data.${tag}`] : [])];
  const files: Deno.FsFile[] = [];
  const signal = options.signal;
  let written = 0;
  try {
    for (const temp of temps) files.push(await Deno.open(temp, { write: true, createNew: true }));
    const [graph, data] = files;
    const values = tensorValues(plan, shape, options.seed ?? 1);
    for (const chunk of shape.head) await writeAll(graph, chunk, signal);
    written += shape.head.reduce((n, c) => n + c.length, 0);
    for (const tensor of shape.tensors) {
      for (const chunk of tensor.frames) await writeAll(graph, chunk, signal);
      written += tensor.frames.reduce((n, c) => n + c.length, 0);
      const weights = values.next().value!;
      if (external) {
        if (tensor.pad > 0) await writeAll(data, new Uint8Array(tensor.pad), signal);
        await writeAll(data, weights, signal);
      } else await writeAll(graph, weights, signal);
      written += tensor.pad + weights.length;
      // Report once per weight matrix (the big chunks), not per bias.
      if (tensor.dims.length === 2) options.onProgress?.(written, total);
    }
    for (const file of files) {
      await file.sync();
      file.close();
    }
    if (external) await Deno.rename(temps[1], `${path}.data`);
    await Deno.rename(temps[0], path);
  } catch (error) {
    for (const file of files) {
      try {
        file.close();
      } catch { /* already closed */ }
    }
    for (const temp of temps) await Deno.remove(temp).catch(() => {});
    throw error;
  }
  options.onProgress?.(written, total);
  return { path, fileBytes: written, dataPath: external ? `${path}.data` : null, ...plan };
}

function gib(bytes: number): string {
  return `${(bytes / 2 ** 30).toFixed(2)} GiB`;
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
  const external = options.externalData !== false;
  const name = path.slice(path.lastIndexOf("/") + 1);
  const expected = layout(plan, external ? `${name}.data` : null);
  try {
    const stat = await Deno.stat(path);
    const data = external ? await Deno.stat(`${path}.data`) : null;
    if (
      stat.isFile && stat.size === expected.fileBytes &&
      (data === null || data.size === expected.dataBytes)
    ) {
      return {
        path,
        fileBytes: stat.size + (data?.size ?? 0),
        dataPath: external ? `${path}.data` : null,
        ...plan,
      };
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  await Deno.mkdir(dir, { recursive: true });
  return await writeSyntheticModel(path, bytes, options);
}
