/**
 * The binary tensor data codec (server/oip/binary.ts), alone: every wire element type
 * round-trips through its bytes, the bytes are the extension's (little-endian, BOOL one
 * byte, BYTES length-prefixed), and a count that does not fit the shape names the tensor;
 * a raw binary request (Inference-Header-Content-Length: 0) is one input's bytes, its shape
 * from the model, or a 400 saying what the model lacks for it.
 */
import assert from "node:assert/strict";
import { TENSOR_ARRAYS, TENSOR_TYPES, type WireTensor } from "../core/pipelines/protocol.ts";
import {
  decodeTensorBytes,
  ELEMENT_BYTES,
  encodeTensorBytes,
  TensorBytesError,
} from "../server/oip/binary.ts";
import { OIP_DATATYPES, wireTypeOf } from "../server/oip/datatypes.ts";
import { type DeclaredInput, parseRawBinaryBody } from "../server/oip/infer.ts";
import { HttpError } from "../server/http/http_error.ts";
import { startService } from "../server/service.ts";
import { testConfig } from "./_service.ts";
import { tempDirSync } from "./_temp.ts";
import { identityModel, oneInputModel } from "./fixtures/oip_models.ts";

/** Four elements of each type, edges included. */
function sample(type: typeof TENSOR_TYPES[number]): WireTensor {
  if (type === "string") return { type, dims: [2, 2], data: ["", "é", "🙂", "long ".repeat(50)] };
  if (type === "int64") {
    return { type, dims: [2, 2], data: BigInt64Array.of(-(2n ** 63n), -1n, 0n, 2n ** 63n - 1n) };
  }
  if (type === "uint64") {
    return { type, dims: [2, 2], data: BigUint64Array.of(0n, 1n, 2n ** 53n + 1n, 2n ** 64n - 1n) };
  }
  const data = new TENSOR_ARRAYS[type](4);
  data.set(
    type === "bool" ? [1, 0, 1, 1] : [1, 2, 3, 4].map((v) => v * (type.startsWith("u") ? 60 : -30)),
  );
  return { type, dims: [2, 2], data };
}

Deno.test("binary - every element type round-trips through its bytes", () => {
  for (const type of TENSOR_TYPES) {
    const tensor = sample(type);
    const bytes = encodeTensorBytes(tensor);
    if (type !== "string") assert.equal(bytes.length, 4 * ELEMENT_BYTES[type], type);
    // At an odd offset, as a tensor lies in a request body after the JSON header.
    const body = new Uint8Array(bytes.length + 3);
    body.set(bytes, 3);
    const back = decodeTensorBytes("x", type, [2, 2], body.subarray(3));
    assert.deepEqual(back, tensor.data, type);
    assert.equal(wireTypeOf(OIP_DATATYPES[type]), type, `${type}'s datatype name maps back`);
  }
  assert.equal(wireTypeOf("BF16"), null);
});

Deno.test("binary - the bytes are the extension's: little-endian, BOOL one byte, BYTES length-prefixed", () => {
  assert.deepEqual(
    [...encodeTensorBytes({ type: "uint32", dims: [1], data: Uint32Array.of(0x01020304) })],
    [4, 3, 2, 1],
  );
  assert.deepEqual(
    [...encodeTensorBytes({ type: "float32", dims: [1], data: Float32Array.of(1) })],
    [0, 0, 0x80, 0x3f],
  );
  assert.deepEqual(
    [...encodeTensorBytes({ type: "bool", dims: [2], data: Uint8Array.of(1, 0) })],
    [1, 0],
  );
  assert.deepEqual(
    [...encodeTensorBytes({ type: "string", dims: [2], data: ["ab", "é"] })],
    [2, 0, 0, 0, 0x61, 0x62, 2, 0, 0, 0, 0xc3, 0xa9],
  );
  // A view into a larger buffer encodes its own elements only.
  const big = Int16Array.of(1, 2, 3, 4);
  assert.deepEqual(
    [...encodeTensorBytes({ type: "int16", dims: [2], data: big.subarray(1, 3) })],
    [2, 0, 3, 0],
  );
});

Deno.test("binary - a byte count that does not fit the shape is refused, naming the tensor", () => {
  assert.throws(
    () => decodeTensorBytes("input0", "uint32", [2, 2], new Uint8Array(15)),
    (error: Error) =>
      error instanceof TensorBytesError &&
      /^input "input0": shape \[2, 2\] of uint32 needs 16 bytes \(4 × 4\) but 15 were sent/.test(
        error.message,
      ),
  );
  const twoStrings = encodeTensorBytes({ type: "string", dims: [2], data: ["a", "b"] });
  assert.throws(
    () => decodeTensorBytes("words", "string", [3], twoStrings),
    /input "words": the shape holds 3 BYTES elements but 2 were sent/,
  );
  assert.throws(
    () => decodeTensorBytes("words", "string", [2], twoStrings.subarray(0, 7)),
    /input "words": BYTES element 1 has 2 bytes left for its 4-byte length/,
  );
  assert.throws(
    () => decodeTensorBytes("words", "string", [1], Uint8Array.of(1, 0, 0, 0, 0xff)),
    /input "words": BYTES element 0 is not UTF-8/,
  );
});

// ---- raw binary requests (Inference-Header-Content-Length: 0) ------------------------------

/** The 400 a raw binary body gets from parseRawBinaryBody, as its message. */
function rawRefusal(inputs: DeclaredInput[], body: Uint8Array): string {
  try {
    parseRawBinaryBody("m", inputs, body);
  } catch (error) {
    assert.ok(error instanceof HttpError, String(error));
    assert.equal(error.status, 400);
    return error.message;
  }
  assert.fail("a raw binary body was taken that should have been refused");
}

Deno.test("binary - a raw binary body is the one input's bytes, its shape from the model", () => {
  const rows = Float32Array.of(1, 2, 3, 4, 5, 6);
  const bytes = encodeTensorBytes({ type: "float32", dims: [2, 3], data: rows });
  // One free dimension: the byte count gives it (2 rows of 3 float32).
  const free = parseRawBinaryBody("m", [{ name: "x", type: "float32", dims: ["N", 3] }], bytes);
  assert.deepEqual(free.tensors.x.dims, [2, 3]);
  assert.deepEqual(free.tensors.x.data, rows);
  assert.deepEqual(free.request.inputs, [{ name: "x", shape: [2, 3], datatype: "FP32" }]);
  assert.equal(free.request.parameters?.binary_data_output, true, "outputs come back as binary");
  // Fixed shape: taken as it is.
  const fixed = parseRawBinaryBody("m", [{ name: "x", type: "float32", dims: [3, 2] }], bytes);
  assert.deepEqual(fixed.tensors.x.dims, [3, 2]);
  // A free batch dimension beside another free one is batch 1; the other is deduced.
  const batch = parseRawBinaryBody("m", [{ name: "x", type: "float32", dims: [-1, "T"] }], bytes);
  assert.deepEqual(batch.tensors.x.dims, [1, 6]);
  // BYTES: shape [1], the element length-prefixed as the extension says.
  const text = encodeTensorBytes({ type: "string", dims: [1], data: ["héllo"] });
  const words = parseRawBinaryBody("m", [{ name: "s", type: "string", dims: ["N"] }], text);
  assert.deepEqual(words.tensors.s, { type: "string", dims: [1], data: ["héllo"] });
});

Deno.test("binary - a raw binary body the model cannot place is a 400 naming what is missing", () => {
  const bytes = new Uint8Array(24);
  assert.match(
    rawRefusal([
      { name: "a", type: "float32", dims: [2] },
      { name: "b", type: "float32", dims: [2] },
    ], bytes),
    /model "m": a raw binary request \(Inference-Header-Content-Length: 0\) needs a model with one input, and it has 2 \("a", "b"\); or send the JSON inference header/,
  );
  assert.match(
    rawRefusal([{ name: "x", type: "float32", dims: [4, "H", "W"] }], bytes),
    /input "x" has shape \[4, H, W\], with 2 free dimensions \(at 1, 2\)/,
  );
  assert.match(
    rawRefusal([{ name: "x", type: "float32", dims: ["N", 5] }], bytes),
    /input "x" of shape \[N, 5\] takes a multiple of 20 bytes \(float32\), but 24 were sent/,
  );
  assert.match(
    rawRefusal([{ name: "x", type: "float32", dims: [2, 2] }], bytes),
    /input "x": shape \[2, 2\] of float32 needs 16 bytes \(4 × 4\) but 24 were sent/,
  );
  assert.match(
    rawRefusal([{ name: "s", type: "string", dims: [2] }], bytes),
    /BYTES input "s" has shape \[2\]; a raw one needs \[1\]/,
  );
  assert.match(rawRefusal([], bytes), /its inputs are not known yet/);
  assert.match(
    rawRefusal([{ name: "x", type: "float32", dims: ["N", 3] }], new Uint8Array(0)),
    /has no bytes/,
  );
});

Deno.test("binary - POST /v2/models/{name}/infer takes a raw binary request and answers binary outputs", async () => {
  const dir = tempDirSync("headroom-raw-");
  Deno.writeFileSync(`${dir}/one.onnx`, oneInputModel());
  Deno.writeFileSync(`${dir}/ids.onnx`, identityModel());
  Deno.writeTextFileSync(
    `${dir}/models.json`,
    JSON.stringify({
      models: [{ id: "one", source: "one.onnx" }, { id: "ids", source: "ids.onnx" }],
    }),
  );
  await using service = await startService(
    testConfig({ gpu: "cpu", modelsFile: `${dir}/models.json` }),
  );
  try {
    const rows = Float32Array.of(1.5, -2, 3, 4, 5e-3, 6);
    const raw = (model: string, body: Uint8Array<ArrayBuffer>) =>
      service.app.request(`/v2/models/${model}/infer`, {
        method: "POST",
        headers: {
          "content-type": "application/octet-stream",
          "inference-header-content-length": "0",
        },
        body,
      });
    // Before the model is loaded: its shape comes from the ONNX file.
    const response = await raw("one", new Uint8Array(rows.buffer));
    assert.equal(response.status, 200, await response.clone().text());
    assert.equal(response.headers.get("content-type"), "application/octet-stream");
    const length = Number(response.headers.get("inference-header-content-length"));
    const bytes = new Uint8Array(await response.arrayBuffer());
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(0, length)));
    assert.deepEqual(header.outputs, [{
      name: "y",
      shape: [2, 3],
      datatype: "FP32",
      parameters: { binary_data_size: 24 },
    }]);
    assert.deepEqual(new Float32Array(bytes.slice(length).buffer), rows);
    // A model with many inputs: a 400 in v2's error shape, naming what is missing.
    const many = await raw("ids", new Uint8Array(8));
    assert.equal(many.status, 400);
    assert.match(
      (await many.json()).error,
      /model "ids": a raw binary request .* needs a model with one input, and it has 13/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
