/**
 * The inputs and outputs an ONNX file declares, read without loading it: the protobuf is
 * walked field by field and every weight is skipped with a seek, so a multi-GB model
 * costs a few reads. Serves model metadata for a model that has never been loaded.
 * @module
 */
import protoRoot from "onnx-proto";
import type { onnx as OnnxNamespace } from "onnx-proto";
import type { TensorInfo, TensorType } from "../pipelines/protocol.ts";
import {
  GRAPH_INITIALIZER,
  GRAPH_INPUT,
  GRAPH_OUTPUT,
  MODEL_GRAPH,
  MODEL_IR_VERSION,
  TENSOR_NAME,
} from "./onnx_fields.ts";

const onnx = (protoRoot as unknown as { onnx: typeof OnnxNamespace }).onnx;
const T = onnx.TensorProto.DataType;

/** ONNX's element type (TensorProto.DataType) of each wire type. */
export const ONNX_ELEMENT_TYPES: Record<TensorType, number> = {
  float32: T.FLOAT,
  float16: T.FLOAT16,
  float64: T.DOUBLE,
  int32: T.INT32,
  int64: T.INT64,
  int16: T.INT16,
  uint8: T.UINT8,
  uint16: T.UINT16,
  uint32: T.UINT32,
  uint64: T.UINT64,
  int8: T.INT8,
  bool: T.BOOL,
  string: T.STRING,
};

const WIRE_TYPES = new Map<number, TensorType>(
  Object.entries(ONNX_ELEMENT_TYPES).map(([type, code]) => [code, type as TensorType]),
);

/** A forward-only reader of a file that skips by seeking. */
class Cursor {
  #buf = new Uint8Array(0);
  #at = 0;
  /** File offset of the end of `#buf`. */
  #end = 0;
  constructor(readonly file: Deno.FsFile, readonly size: number) {}

  get pos(): number {
    return this.#end - (this.#buf.length - this.#at);
  }

  async #fill(): Promise<void> {
    const chunk = new Uint8Array(64 * 1024);
    const n = await this.file.read(chunk);
    if (n === null || n === 0) {
      throw new RangeError(`the ONNX file ends early at byte ${this.#end}`);
    }
    this.#buf = chunk.subarray(0, n);
    this.#at = 0;
    this.#end += n;
  }

  async byte(): Promise<number> {
    if (this.#at >= this.#buf.length) await this.#fill();
    return this.#buf[this.#at++];
  }

  async varint(): Promise<number> {
    let value = 0;
    for (let shift = 0; shift < 64; shift += 7) {
      const b = await this.byte();
      value += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return value;
    }
    throw new RangeError("a varint longer than 10 bytes: not an ONNX file");
  }

  async bytes(n: number): Promise<Uint8Array> {
    const out = new Uint8Array(n);
    let got = 0;
    while (got < n) {
      if (this.#at >= this.#buf.length) await this.#fill();
      const take = Math.min(n - got, this.#buf.length - this.#at);
      out.set(this.#buf.subarray(this.#at, this.#at + take), got);
      this.#at += take;
      got += take;
    }
    return out;
  }

  async skip(n: number): Promise<void> {
    const left = this.#buf.length - this.#at;
    if (n <= left) {
      this.#at += n;
      return;
    }
    const target = this.pos + n;
    if (target > this.size) throw new RangeError(`a field runs past the file's ${this.size} bytes`);
    await this.file.seek(target, Deno.SeekMode.Start);
    this.#buf = new Uint8Array(0);
    this.#at = 0;
    this.#end = target;
  }

  /** Skips one field's value of wire type `wire`. */
  async skipValue(wire: number): Promise<void> {
    if (wire === 0) await this.varint();
    else if (wire === 1) await this.skip(8);
    else if (wire === 2) await this.skip(await this.varint());
    else if (wire === 5) await this.skip(4);
    else throw new RangeError(`wire type ${wire} is not used by ONNX: not an ONNX file`);
  }
}

/** Calls `field` for each field until `end`; it returns false to have the value skipped. */
async function walk(
  cursor: Cursor,
  end: number,
  field: (number: number, wire: number) => Promise<boolean>,
): Promise<void> {
  while (cursor.pos < end) {
    const tag = await cursor.varint();
    const number = Math.floor(tag / 8);
    const wire = tag & 7;
    if (!(await field(number, wire))) await cursor.skipValue(wire);
  }
}

function tensorInfo(value: OnnxNamespace.IValueInfoProto): TensorInfo {
  const tensor = value.type?.tensorType;
  return {
    name: value.name ?? "",
    type: tensor?.elemType != null ? WIRE_TYPES.get(tensor.elemType) ?? null : null,
    dims: (tensor?.shape?.dim ?? []).map((d) =>
      d.dimParam ? d.dimParam : d.dimValue != null ? Number(d.dimValue) : -1
    ),
  };
}

/**
 * The graph inputs (initializers left out, as older models list them as inputs too) and
 * outputs of the ONNX file at `path`. Throws when the file is missing or is not ONNX.
 */
export async function readModelSignature(
  path: string,
): Promise<{ inputs: TensorInfo[]; outputs: TensorInfo[] }> {
  using file = await Deno.open(path);
  const cursor = new Cursor(file, (await file.stat()).size);
  const inputs: TensorInfo[] = [];
  const outputs: TensorInfo[] = [];
  const initializers = new Set<string>();
  let irVersion = 0;
  await walk(cursor, cursor.size, async (number, wire) => {
    if (number === MODEL_IR_VERSION && wire === 0) {
      irVersion = await cursor.varint();
      return true;
    }
    if (number !== MODEL_GRAPH || wire !== 2) return false;
    const graphLength = await cursor.varint();
    const graphEnd = cursor.pos + graphLength;
    await walk(cursor, graphEnd, async (graphField, graphWire) => {
      if (graphWire !== 2) return false;
      if (graphField === GRAPH_INPUT || graphField === GRAPH_OUTPUT) {
        const info = tensorInfo(
          onnx.ValueInfoProto.decode(await cursor.bytes(await cursor.varint())),
        );
        (graphField === GRAPH_INPUT ? inputs : outputs).push(info);
        return true;
      }
      // Initializer names only matter where inputs list initializers (IR version < 4).
      if (graphField !== GRAPH_INITIALIZER || irVersion >= 4) return false;
      const tensorLength = await cursor.varint();
      const tensorEnd = cursor.pos + tensorLength;
      await walk(cursor, tensorEnd, async (tensorField, tensorWire) => {
        if (tensorField !== TENSOR_NAME || tensorWire !== 2) return false;
        initializers.add(new TextDecoder().decode(await cursor.bytes(await cursor.varint())));
        return true;
      });
      return true;
    });
    return true;
  });
  return { inputs: inputs.filter((input) => !initializers.has(input.name)), outputs };
}
