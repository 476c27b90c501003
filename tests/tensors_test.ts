/**
 * One list of tensor types: the HTTP schema and the typed arrays are derived from the
 * protocol's TENSOR_TYPES, so JSON takes every wire type (but float16, whose bits JSON
 * numbers do not carry), each becomes the typed array the worker expects, and a type
 * outside the list is refused naming the ones it takes.
 */
import assert from "node:assert/strict";
import {
  TENSOR_ARRAYS,
  TENSOR_TYPES,
  type TensorInfo,
  type WireTensor,
} from "../core/pipelines/protocol.ts";
import { feedProblem } from "../core/pipelines/feeds.ts";
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

Deno.test("feedProblem - tensors checked against the declared inputs name the input and the dimension", () => {
  const cls: TensorInfo[] = [{
    name: "x",
    type: "float32",
    dims: ["p2o.DynamicDimension.0", 3, "h", "w"],
  }];
  const tensor = (dims: number[], type: WireTensor["type"] = "float32"): WireTensor => ({
    type,
    dims,
    data: new Float32Array(dims.reduce((a, b) => a * b, 1)),
  });
  assert.equal(feedProblem(cls, { x: tensor([1, 3, 48, 192]) }), null);
  assert.equal(
    feedProblem(cls, { x: tensor([1, 3, 0, 192]) }),
    'Input "x" has dims [1, 3, 0, 192]: dimension 2 is 0; the model declares ' +
      "[?, 3, h, w] and computes nothing on an empty tensor: give " +
      "dimension 2 at least 1",
  );
  assert.match(feedProblem(cls, { x: tensor([0, 3, 32, 32]) })!, /dimension 0 is 0/);
  assert.equal(
    feedProblem(cls, { x: tensor([1, 4, 48, 192]) }),
    'Input "x" has dims [1, 4, 48, 192]: expected [?, 3, h, w] ' +
      "(dimension 1 is 4, not 3)",
  );
  assert.match(feedProblem(cls, { x: tensor([3, 48, 192]) })!, /\(4 dimensions, not 3\)/);
  assert.match(
    feedProblem(cls, { x: tensor([1, 3, 8, 8], "int32") })!,
    /type int32: expected float32/,
  );
  assert.match(feedProblem(cls, { y: tensor([1]) })!, /Unknown input "y": expected "x"/);
  assert.equal(feedProblem(cls, {}), 'Missing input "x"');
  // A free dimension of -1 (read unsigned by some sessions) and a scalar input.
  const vad: TensorInfo[] = [
    { name: "input", type: "float32", dims: [-1, -1] },
    { name: "sr", type: "int64", dims: [] },
  ];
  const sr: WireTensor = { type: "int64", dims: [], data: new BigInt64Array([16000n]) };
  assert.equal(feedProblem(vad, { input: tensor([1, 576]), sr }), null);
  assert.match(
    feedProblem(vad, { input: tensor([1, 0]), sr })!,
    /dimension 1 is 0; the model declares \[\?, \?\]/,
  );
  // A model that declares a fixed 0 takes it.
  assert.equal(
    feedProblem([{ name: "e", type: "float32", dims: [0, 4] }], { e: tensor([0, 4]) }),
    null,
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
