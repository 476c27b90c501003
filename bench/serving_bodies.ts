/**
 * The serving bench's request bodies for one input, written once for the harness
 * (scripts/_lib/serving.ts) and the request-path timer (bench/request_path.ts).
 * @module
 */
import { encodeTensorBytes } from "../server/oip/binary.ts";

/**
 * One input's three request bodies: v2 JSON, v2 binary (the JSON header, then the tensor's
 * bytes; `headerLength` is its Inference-Header-Content-Length) and /api/v1 JSON.
 */
export function requestBodies(data: Float32Array, width: number): {
  json: Uint8Array;
  binary: Uint8Array;
  headerLength: number;
  v1: Uint8Array;
} {
  const json = new TextEncoder().encode(JSON.stringify({
    inputs: [{ name: "input", shape: [1, width], datatype: "FP32", data: Array.from(data) }],
  }));
  const bytes = encodeTensorBytes({ type: "float32", dims: [1, width], data });
  const header = new TextEncoder().encode(JSON.stringify({
    inputs: [{
      name: "input",
      shape: [1, width],
      datatype: "FP32",
      parameters: { binary_data_size: bytes.length },
    }],
    parameters: { binary_data_output: true },
  }));
  const binary = new Uint8Array(header.length + bytes.length);
  binary.set(header);
  binary.set(bytes, header.length);
  const v1 = new TextEncoder().encode(JSON.stringify({
    inputs: { input: { type: "float32", dims: [1, width], data: Array.from(data) } },
  }));
  return { json, binary, headerLength: header.length, v1 };
}
