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

/** Reads a file at arbitrary offsets through a small window (headers only, never payloads). */
class Window {
  #file: Deno.FsFile;
  #buf = new Uint8Array(0);
  #start = 0;
  constructor(file: Deno.FsFile, readonly size: number) {
    this.#file = file;
  }

  async byte(at: number): Promise<number> {
    if (at >= this.size) throw new RangeError("past the end");
    if (at < this.#start || at >= this.#start + this.#buf.length) {
      const length = Math.min(64 * 1024, this.size - at);
      const buf = new Uint8Array(length);
      await this.#file.seek(at, Deno.SeekMode.Start);
      let got = 0;
      while (got < length) {
        const n = await this.#file.read(buf.subarray(got));
        if (n === null) break;
        got += n;
      }
      this.#buf = buf.subarray(0, got);
      this.#start = at;
      if (got === 0) throw new RangeError("past the end");
    }
    return this.#buf[at - this.#start];
  }

  async bytes(at: number, length: number): Promise<Uint8Array> {
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i++) out[i] = await this.byte(at + i);
    return out;
  }
}

interface Field {
  field: number;
  wire: number;
  /** Varint value (wire 0), or payload length (wire 2). */
  value: number;
  /** Where the payload starts (wire 2), or the next field (others). */
  at: number;
  /** Where the next field starts. */
  next: number;
}

async function varint(w: Window, at: number): Promise<[number, number]> {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    const b = await w.byte(at + i);
    value += (b & 0x7f) * scale;
    scale *= 128;
    if ((b & 0x80) === 0) return [value, at + i + 1];
  }
  throw new RangeError("varint longer than 10 bytes");
}

/** Yields the fields of the message in [start, end). Throws RangeError on malformed bytes. */
async function* fields(w: Window, start: number, end: number): AsyncGenerator<Field> {
  let at = start;
  while (at < end) {
    const [tag, afterTag] = await varint(w, at);
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    if (field === 0) throw new RangeError("field number 0");
    let value = 0;
    let next: number;
    if (wire === 0) {
      [value, next] = await varint(w, afterTag);
    } else if (wire === 1) next = afterTag + 8;
    else if (wire === 5) next = afterTag + 4;
    else if (wire === 2) {
      let payload: number;
      [value, payload] = await varint(w, afterTag);
      next = payload + value;
      if (next > end) throw new RangeError(`field ${field} runs past its message`);
      yield { field, wire, value, at: payload, next };
      at = next;
      continue;
    } else throw new RangeError(`wire type ${wire} (field ${field})`);
    if (next > end) throw new RangeError(`field ${field} runs past its message`);
    yield { field, wire, value, at: afterTag, next };
    at = next;
  }
}

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
