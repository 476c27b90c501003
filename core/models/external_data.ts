/**
 * Reads what an `.onnx` file needs without loading its weights: walks the protobuf's
 * headers (ModelProto → graph → initializers), skipping every payload by seeking, and
 * lists the external data files its initializers point at (`model.onnx` +
 * `model.onnx.data`, as `onnx.save_model(..., save_as_external_data=True)` writes them).
 * A file that is not a well-formed ModelProto is reported as corrupt, by name, before any
 * engine sees it. Runs on the main thread (for estimates and limits) and in workers.
 * @module
 */
import { dirname, isAbsolute, join, normalize, relative } from "node:path";
import {
  ENTRY_KEY,
  ENTRY_VALUE,
  GRAPH_INITIALIZER,
  LOCATION_EXTERNAL,
  MODEL_GRAPH,
  MODEL_IR_VERSION,
  TENSOR_DATA_LOCATION,
  TENSOR_EXTERNAL_DATA,
} from "./onnx_fields.ts";
import { type Field, fields, Window } from "./protobuf_fields.ts";

/** One external data file an ONNX model reads. */
export interface ExternalDataFile {
  /** The `location` as written in the model (relative to the model's folder). */
  location: string;
  /** Absolute path. */
  path: string;
  /** Bytes the model reads from it (the furthest offset + length). */
  bytes: number;
  /** Size of the file on disk. */
  fileBytes: number;
}

/** What a model's files hold. */
export interface OnnxFileInfo {
  path: string;
  /** Size of the `.onnx` file itself (the protobuf). */
  graphBytes: number;
  externalData: ExternalDataFile[];
  /** Graph file + every external data file: what a session must read, the estimate's basis. */
  totalBytes: number;
}

/** Why a model file cannot be used; `kind` lets callers map it to a status. */
export class ModelFileError extends Error {
  override name = "ModelFileError";
  constructor(readonly kind: "corrupt" | "missing_data" | "too_large", message: string) {
    super(message);
  }
}

/** protobuf refuses messages of 2 GiB or more: the `.onnx` protobuf itself must be smaller. */
export const PROTOBUF_LIMIT_BYTES = 2 ** 31 - 1;

const text = new TextDecoder("utf-8", { fatal: true });

/** Reads one initializer's external data reference, or null when its data is inline. */
async function externalRef(
  w: Window,
  f: Field,
): Promise<{ location: string; end: number } | null> {
  let external = false;
  const entries = new Map<string, string>();
  for await (const t of fields(w, f.at, f.next)) {
    if (t.field === TENSOR_DATA_LOCATION && t.wire === 0) external = t.value === LOCATION_EXTERNAL;
    if (t.field === TENSOR_EXTERNAL_DATA && t.wire === 2) {
      let key = "";
      let value = "";
      for await (const e of fields(w, t.at, t.next)) {
        if (e.wire !== 2 || e.value > 4096) continue;
        if (e.field === ENTRY_KEY) key = text.decode(await w.bytes(e.at, e.value));
        if (e.field === ENTRY_VALUE) value = text.decode(await w.bytes(e.at, e.value));
      }
      entries.set(key, value);
    }
  }
  if (!external) return null;
  const location = entries.get("location");
  if (!location) throw new RangeError("an external initializer has no location");
  const offset = Number(entries.get("offset") ?? 0);
  const length = Number(entries.get("length") ?? NaN);
  return { location, end: offset + (Number.isFinite(length) ? length : 0) };
}

/**
 * Scans the model at `path` and checks its external data files: each must stay inside the
 * model's folder and exist, long enough for every tensor read from it. Throws
 * {@link ModelFileError} naming the file and the fix.
 */
export async function scanOnnxFile(path: string): Promise<OnnxFileInfo> {
  const file = await Deno.open(path, { read: true });
  const graphBytes = (await file.stat()).size;
  const ends = new Map<string, number>();
  const corrupt = (why: string) =>
    new ModelFileError(
      "corrupt",
      `Model file ${path} is not a valid ONNX model (${why}): re-export or re-download it`,
    );
  if (graphBytes > PROTOBUF_LIMIT_BYTES) {
    file.close();
    throw new ModelFileError(
      "too_large",
      `${path} is ${(graphBytes / 2 ** 30).toFixed(2)} GiB in one protobuf file: onnxruntime ` +
        "cannot read a single .onnx of 2 GiB or more. Save it with external data, e.g. " +
        "onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True)",
    );
  }
  try {
    const w = new Window(file, graphBytes);
    let hasGraph = false;
    let hasIr = false;
    try {
      for await (const m of fields(w, 0, graphBytes)) {
        if (m.field === MODEL_IR_VERSION && m.wire === 0) hasIr = true;
        if (m.field !== MODEL_GRAPH || m.wire !== 2) continue;
        hasGraph = true;
        for await (const g of fields(w, m.at, m.next)) {
          if (g.field !== GRAPH_INITIALIZER || g.wire !== 2) continue;
          const ref = await externalRef(w, g);
          if (ref) ends.set(ref.location, Math.max(ends.get(ref.location) ?? 0, ref.end));
        }
      }
    } catch (error) {
      if (error instanceof RangeError || error instanceof TypeError) throw corrupt(error.message);
      throw error;
    }
    if (!hasIr || !hasGraph) {
      throw corrupt(hasIr ? "no graph" : "no ir_version: not a ModelProto");
    }
  } finally {
    file.close();
  }
  const folder = dirname(path);
  const realFolder = ends.size > 0 ? await Deno.realPath(folder) : folder;
  const externalData: ExternalDataFile[] = [];
  for (const [location, bytes] of ends) {
    const resolved = normalize(join(folder, location));
    const rel = relative(folder, resolved);
    if (isAbsolute(location) || rel.startsWith("..") || rel === "") {
      throw new ModelFileError(
        "corrupt",
        `Model file ${path} names external data "${location}" outside its folder: ` +
          "external data must sit beside the model (a relative path inside its folder)",
      );
    }
    let fileBytes: number;
    let real: string;
    try {
      real = await Deno.realPath(resolved);
      fileBytes = (await Deno.stat(real)).size;
    } catch {
      throw new ModelFileError(
        "missing_data",
        `Model file ${path} needs its external data file ${resolved}, which is missing: ` +
          `copy "${location}" beside the model`,
      );
    }
    // A symlink (or a linked folder on the way) may point anywhere: what counts is where
    // the file really is. On main the wasm and webgpu engines read a secret file's bytes
    // through a symlinked ".data" and answered them as an Identity output.
    const realRel = relative(realFolder, real);
    if (realRel.startsWith("..") || isAbsolute(realRel) || realRel === "") {
      throw new ModelFileError(
        "corrupt",
        `Model file ${path} names external data "${location}", which resolves to ${real}, ` +
          `outside the model's folder ${realFolder} (a symlink): copy the data file beside ` +
          "the model instead of linking it",
      );
    }
    if (fileBytes < bytes) {
      throw new ModelFileError(
        "missing_data",
        `External data file ${resolved} has ${fileBytes} bytes, but the model reads up to ` +
          `byte ${bytes}: the file is truncated; copy it again`,
      );
    }
    externalData.push({ location, path: real, bytes, fileBytes });
  }
  return {
    path,
    graphBytes,
    externalData,
    totalBytes: graphBytes + externalData.reduce((n, f) => n + f.fileBytes, 0),
  };
}
