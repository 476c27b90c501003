/**
 * The binary tensor data codec (server/oip/binary.ts), alone: every wire element type
 * round-trips through its bytes, the bytes are the extension's (little-endian, BOOL one
 * byte, BYTES length-prefixed), and a count that does not fit the shape names the tensor.
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
