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
import { fields, Window } from "./protobuf_fields.ts";

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
  const w = new Window(file, (await file.stat()).size);
  const inputs: TensorInfo[] = [];
  const outputs: TensorInfo[] = [];
  const initializers = new Set<string>();
  let irVersion = 0;
  for await (const m of fields(w, 0, w.size)) {
    if (m.field === MODEL_IR_VERSION && m.wire === 0) irVersion = m.value;
    if (m.field !== MODEL_GRAPH || m.wire !== 2) continue;
    for await (const g of fields(w, m.at, m.next)) {
      if (g.wire !== 2) continue;
      if (g.field === GRAPH_INPUT || g.field === GRAPH_OUTPUT) {
        const info = tensorInfo(onnx.ValueInfoProto.decode(await w.bytes(g.at, g.value)));
        (g.field === GRAPH_INPUT ? inputs : outputs).push(info);
        continue;
      }
      // Initializer names only matter where inputs list initializers (IR version < 4).
      if (g.field !== GRAPH_INITIALIZER || irVersion >= 4) continue;
      for await (const t of fields(w, g.at, g.next)) {
        if (t.field === TENSOR_NAME && t.wire === 2) {
          initializers.add(new TextDecoder().decode(await w.bytes(t.at, t.value)));
        }
      }
    }
  }
  return { inputs: inputs.filter((input) => !initializers.has(input.name)), outputs };
}
