/**
 * One list of tensor types: the HTTP schema and the typed arrays are derived from the
 * protocol's TENSOR_TYPES, so JSON takes every wire type (but float16, whose bits JSON
 * numbers do not carry), each becomes the typed array the worker expects, and a type
 * outside the list is refused naming the ones it takes.
 */
import assert from "node:assert/strict";
import { TENSOR_ARRAYS, TENSOR_TYPES } from "../core/pipelines/protocol.ts";
import { jsonTensorSchema, jsonToWire, wireToJson } from "../server/http/tensors.ts";

Deno.test("tensors - JSON takes every wire type but float16, each as the protocol's typed array", () => {
  for (const type of TENSOR_TYPES) {
    const data = type === "string" ? ["1", ""] : [1, 0];
    const parsed = jsonTensorSchema.safeParse({ type, dims: [2], data });
    if (type === "float16") {
      assert.equal(parsed.success, false, "float16 is not taken from JSON");
      continue;
    }
    assert.ok(parsed.success, `${type} is taken from JSON`);
    const wire = jsonToWire({ x: parsed.data })["x"];
    if (type === "string") assert.ok(Array.isArray(wire.data), "string data is a string[]");
    else assert.ok(wire.data instanceof TENSOR_ARRAYS[type], `${type} becomes its typed array`);
    assert.deepEqual(wireToJson({ x: wire })["x"], { type, dims: [2], data });
  }
});

Deno.test("tensors - an unknown type is refused, naming every type JSON takes", () => {
  const parsed = jsonTensorSchema.safeParse({ type: "complex64", dims: [1], data: [1] });
  assert.equal(parsed.success, false);
  assert.match(
    parsed.error!.issues[0].message,
    /^must be one of float32, float64, int32, int64, int16, uint8, uint16, uint32, uint64, int8, bool, string$/,
  );
});

Deno.test("tensors - string data must be strings without NUL; 64-bit unsigned takes the full range", () => {
  assert.throws(
    () => jsonToWire({ words: { type: "string", dims: [2], data: ["a", 1] } }),
    /input "words": data\[1\] is not a string/,
  );
  assert.throws(
    () => jsonToWire({ words: { type: "string", dims: [1], data: ["a\u0000b"] } }),
    /input "words": data\[0\] holds a NUL character/,
  );
  const big = jsonToWire({ n: { type: "uint64", dims: [2], data: ["18446744073709551615", 7] } });
  assert.deepEqual(wireToJson(big)["n"].data, ["18446744073709551615", 7]);
});
