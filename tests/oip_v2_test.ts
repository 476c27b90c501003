/**
 * The Open Inference Protocol v2 over REST, end to end with real workers on the native
 * CPU engine: every route's answer validates against the protocol's own schemas (KServe's
 * open_inference_rest.yaml, vendored in fixtures/, read with `yaml` and checked with
 * `ajv`; the shapes it leaves to inference_rest.md and Triton's extension docs are
 * written out below from those docs), the spec's request examples are answered as it
 * says, every element type round-trips as binary data and as JSON, and wrong sizes,
 * types and names are refused with a 400 naming the tensor.
 */
import assert from "node:assert/strict";
import { Ajv } from "ajv";
import { parse } from "yaml";
import { startService } from "../server/service.ts";
import { TENSOR_TYPES, type TensorType } from "../core/pipelines/protocol.ts";
import { OIP_DATATYPES } from "../server/oip/datatypes.ts";
import { encodeTensorBytes } from "../server/oip/binary.ts";
import { testConfig } from "./_service.ts";
import { tempDirSync } from "./_temp.ts";
import { identityModel, SPEC_OUTPUT0, specExampleModel } from "./fixtures/oip_models.ts";

// ---- the protocol's schemas ----------------------------------------------------------------

const spec = parse(
  Deno.readTextFileSync(new URL("./fixtures/open_inference_rest.yaml", import.meta.url)),
) as {
  components: { schemas: Record<string, Record<string, unknown>> };
};
const schemas = spec.components.schemas;
const ajv = new Ajv({ strict: false, allErrors: true });
ajv.addSchema({ $id: "oip", components: spec.components });
/** Shapes the YAML leaves out: inference_rest.md ($ready_*, $live_*) and Triton's extensions. */
ajv.addSchema({
  $id: "docs",
  components: spec.components, // the protocol's schemas these refer to
  definitions: {
    live_server_response: {
      type: "object",
      properties: { live: { type: "boolean" } },
      required: ["live"],
    },
    ready_model_response: {
      type: "object",
      properties: { name: { type: "string" }, ready: { type: "boolean" } },
      required: ["name", "ready"],
    },
    // extension_model_repository.md: $repository_index_response.
    repository_index_response: {
      type: "array",
      items: {
        type: "object",
        properties: {
          name: { type: "string" },
          version: { type: "string" },
          state: { type: "string" },
          reason: { type: "string" },
        },
        required: ["name", "state", "reason"],
      },
    },
    // extension_binary_data.md: a binary output has parameters.binary_data_size instead of data.
    binary_inference_response: {
      ...schemas.inference_response,
      properties: {
        ...(schemas.inference_response.properties as object),
        outputs: {
          type: "array",
          items: {
            ...schemas.response_output,
            required: ["name", "shape", "datatype", "parameters"],
            properties: {
              ...(schemas.response_output.properties as object),
              parameters: {
                type: "object",
                properties: { binary_data_size: { type: "integer", minimum: 0 } },
                required: ["binary_data_size"],
              },
            },
          },
        },
      },
    },
  },
});

/** Asserts `value` validates against the named schema ("oip#/components/schemas/…" or "docs#/…"). */
function conforms(ref: string, value: unknown): void {
  const validate = ajv.getSchema(ref);
  assert.ok(validate, `no schema ${ref}`);
  assert.ok(
    validate(value),
    `${ref}: ${ajv.errorsText(validate.errors)} in ${JSON.stringify(value)}`,
  );
}
const oip = (name: string) => `oip#/components/schemas/${name}`;
const docs = (name: string) => `docs#/definitions/${name}`;

// ---- a service with the test models ------------------------------------------------------

async function startWithModels(overrides: Parameters<typeof testConfig>[0] = {}) {
  const dir = tempDirSync("headroom-oip-");
  Deno.writeFileSync(`${dir}/identities.onnx`, identityModel());
  Deno.writeFileSync(`${dir}/spec.onnx`, specExampleModel());
  Deno.writeTextFileSync(
    `${dir}/models.json`,
    JSON.stringify({
      models: [
        { id: "identities", source: "identities.onnx" },
        { id: "mymodel", source: "spec.onnx" },
      ],
    }),
  );
  const service = await startService(
    testConfig({ gpu: "cpu", modelsFile: `${dir}/models.json`, ...overrides }),
  );
  return {
    service,
    request: (path: string, init?: RequestInit) => service.app.request(path, init),
    async [Symbol.asyncDispose]() {
      await service[Symbol.asyncDispose]();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

const post = (body: unknown, headers: Record<string, string> = {}): RequestInit => ({
  method: "POST",
  headers: { "content-type": "application/json", ...headers },
  body: JSON.stringify(body),
});

/** A binary-extension body: the JSON header, then each part's bytes. */
function binaryBody(header: unknown, parts: Uint8Array[]): RequestInit {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const body = new Uint8Array(json.length + parts.reduce((n, p) => n + p.length, 0));
  body.set(json);
  let at = json.length;
  for (const part of parts) {
    body.set(part, at);
    at += part.length;
  }
  return {
    method: "POST",
    headers: {
      "content-type": "application/octet-stream",
      "inference-header-content-length": String(json.length),
    },
    body,
  };
}

/** Splits a binary-extension answer into its JSON header and the bytes after it. */
async function readBinary(response: Response) {
  const length = Number(response.headers.get("inference-header-content-length"));
  assert.ok(length > 0, "Inference-Header-Content-Length is set");
  assert.equal(response.headers.get("content-type"), "application/octet-stream");
  const bytes = new Uint8Array(await response.arrayBuffer());
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(0, length)));
  return { header, binary: bytes.subarray(length) };
}

/** Answers with this status and an `{"error": "…"}` body matching `pattern`. */
async function refused(response: Response, status: number, pattern: RegExp, schema: string) {
  const body = await response.json();
  assert.equal(response.status, status, JSON.stringify(body));
  conforms(oip(schema), body);
  assert.deepEqual(Object.keys(body), ["error"], "v2's error shape, not Headroom's own");
  assert.match(body.error, pattern);
}

// ---- sample tensors of every element type, shape [3, 2] -----------------------------------

const SAMPLES: Record<TensorType, ArrayLike<unknown>> = {
  float32: Float32Array.of(1.5, -2.25, 3e38, -0, 1e-30, 7),
  float16: Uint16Array.of(0x3c00, 0xc000, 0x7bff, 0x0001, 0x8000, 0x3555), // raw half bits
  float64: Float64Array.of(Math.PI, -1e300, 5e-324, 0, 2 ** 53 + 2, -7.5),
  int32: Int32Array.of(-(2 ** 31), 2 ** 31 - 1, 0, -1, 42, 7),
  int64: BigInt64Array.of(-(2n ** 63n), 2n ** 63n - 1n, 0n, -1n, 2n ** 53n + 1n, 7n),
  int16: Int16Array.of(-32768, 32767, 0, -1, 300, 7),
  uint8: Uint8Array.of(0, 255, 1, 128, 42, 7),
  uint16: Uint16Array.of(0, 65535, 1, 32768, 300, 7),
  uint32: Uint32Array.of(0, 2 ** 32 - 1, 1, 2 ** 31, 300, 7),
  uint64: BigUint64Array.of(0n, 2n ** 64n - 1n, 1n, 2n ** 63n, 2n ** 53n + 1n, 7n),
  int8: Int8Array.of(-128, 127, 0, -1, 42, 7),
  bool: Uint8Array.of(1, 0, 0, 1, 1, 0),
  string: ["", "héllo", "tab\tnew\nline", "🙂 emoji", "x".repeat(300), "7"],
};

function sampleTensor(type: TensorType) {
  const data = SAMPLES[type];
  return { type, dims: [3, 2], data: (Array.isArray(data) ? [...data] : data) as never };
}

/** A sample's values as protocol JSON (BOOL as booleans, 64-bit as decimal strings when unsafe, -0 as 0). */
function jsonValues(type: TensorType): Array<number | string | boolean> {
  return Array.from(SAMPLES[type] as ArrayLike<number | bigint | string>, (v) => {
    if (type === "bool") return v === 1;
    if (typeof v === "bigint") return Number.isSafeInteger(Number(v)) ? Number(v) : String(v);
    return Object.is(v, -0) ? 0 : v as number | string; // JSON has no -0
  });
}

// ---- the tests -----------------------------------------------------------------------------

Deno.test("v2 - server metadata, health, model metadata and readiness answer the protocol's schemas", async () => {
  await using t = await startWithModels();
  const meta = await (await t.request("/v2")).json();
  conforms(oip("metadata_server_response"), meta);
  assert.deepEqual(meta.extensions, ["binary_tensor_data", "model_repository"]);
  assert.equal(meta.name, "headroom");
  const slash = await t.request("/v2/");
  assert.equal(slash.status, 301, "the YAML's `/v2/` leads to `/v2`");
  assert.equal(new URL(slash.headers.get("location")!).pathname, "/v2");

  const live = await t.request("/v2/health/live");
  assert.equal(live.status, 200);
  conforms(docs("live_server_response"), await live.json());
  const ready = await t.request("/v2/health/ready");
  assert.equal(ready.status, 200);
  assert.equal((await ready.json()).ready, true);

  // Not loaded yet: not ready, with how to load it; unknown names and versions are 404s.
  await refused(
    await t.request("/v2/models/mymodel/ready"),
    400,
    /not ready.*\/v2\/repository\/models\/mymodel\/load/,
    "metadata_model_error_response",
  );
  await refused(
    await t.request("/v2/models/nope"),
    404,
    /nope/,
    "metadata_model_error_response",
  );
  await refused(
    await t.request("/v2/models/mymodel/versions/2"),
    404,
    /no version "2".*"1"/,
    "metadata_model_error_response",
  );

  // Never loaded: the metadata is read from the ONNX file itself, nothing loads.
  const declared = await (await t.request("/v2/models/mymodel")).json();
  conforms(oip("metadata_model_response"), declared);
  assert.deepEqual(declared.inputs, [
    { name: "input0", datatype: "UINT32", shape: [2, 2] },
    { name: "input1", datatype: "BOOL", shape: [3] },
  ]);
  assert.deepEqual(declared.outputs.map((o: { name: string }) => o.name), [
    "output0",
    "output1",
    "output2",
  ]);
  assert.equal(t.service.services.scheduler.model("mymodel").state, "unloaded");
  const unloaded = await (await t.request("/v2/models/identities")).json();
  const load = await t.request("/v2/repository/models/identities/load", { method: "POST" });
  assert.equal(load.status, 200, await load.clone().text());
  for (const path of ["/v2/models/identities", "/v2/models/identities/versions/1"]) {
    const response = await t.request(path);
    assert.equal(response.status, 200);
    const model = await response.json();
    conforms(oip("metadata_model_response"), model);
    assert.equal(model.platform, "onnx_onnxv1");
    assert.deepEqual(model.versions, ["1"]);
    assert.deepEqual(
      model.inputs,
      TENSOR_TYPES.map((type) => ({
        name: `in_${type}`,
        datatype: OIP_DATATYPES[type],
        shape: [-1, 2], // the free dimension N as -1
      })),
    );
    assert.deepEqual(model.outputs.map((o: { datatype: string }) => o.datatype), [
      "FP32",
      "FP16",
      "FP64",
      "INT32",
      "INT64",
      "INT16",
      "UINT8",
      "UINT16",
      "UINT32",
      "UINT64",
      "INT8",
      "BOOL",
      "BYTES",
    ]);
  }
  // What the file declares is what the loaded session reports.
  assert.deepEqual(unloaded, await (await t.request("/v2/models/identities")).json());
  for (const path of ["/v2/models/identities/ready", "/v2/models/identities/versions/1/ready"]) {
    const response = await t.request(path);
    assert.equal(response.status, 200);
    const body = await response.json();
    conforms(docs("ready_model_response"), body);
    assert.deepEqual(body, { name: "identities", ready: true });
  }
});

Deno.test("v2 - the spec's own request examples are answered as the spec says", async () => {
  await using t = await startWithModels();
  const examples = schemas.inference_request["x-examples"] as Record<
    string,
    { id: string; inputs?: Array<{ name: string; data: unknown[] }>; outputs: unknown[] }
  >;
  const example1 = examples["Example 1"];
  // As written, Example 1 gives input1 shape [3] and one value: refused, naming input1.
  await refused(
    await t.request("/v2/models/mymodel/infer", post(example1)),
    400,
    /input "input1".*\[3\].*3 elements.*1/,
    "inference_error_response",
  );
  // With input1's three values, the answer is the spec's response example: only the
  // output asked for (output0), FP32 [3, 2], and the request's id echoed.
  const fixed = structuredClone(example1);
  fixed.inputs![1].data = [true, false, true];
  for (const path of ["/v2/models/mymodel/infer", "/v2/models/mymodel/versions/1/infer"]) {
    const response = await t.request(path, post(fixed));
    const body = await response.json();
    assert.equal(response.status, 200, JSON.stringify(body));
    conforms(oip("inference_response"), body);
    assert.equal(body.id, "42");
    assert.equal(body.model_name, "mymodel");
    const expected = examples["Example 2"].outputs as Array<{ data: number[] }>;
    assert.deepEqual(body.outputs, [{ ...expected[0], data: SPEC_OUTPUT0.map(Math.fround) }]);
  }
  // Example 2 is a response, not a request: without inputs it is refused, naming the field.
  await refused(
    await t.request("/v2/models/mymodel/infer", post(examples["Example 2"])),
    400,
    /inputs/,
    "inference_error_response",
  );
  // Nested data is row-major data too; no `outputs` asked: every output, in the model's order.
  const nested = await t.request(
    "/v2/models/mymodel/infer",
    post({
      inputs: [
        { name: "input0", shape: [2, 2], datatype: "UINT32", data: [[1, 2], [3, 4]] },
        { name: "input1", shape: [3], datatype: "BOOL", data: [true, false, true] },
      ],
    }),
  );
  const all = await nested.json();
  assert.equal(nested.status, 200, JSON.stringify(all));
  conforms(oip("inference_response"), all);
  assert.equal(all.id, undefined, "no id asked, none echoed");
  assert.deepEqual(all.outputs.map((o: { name: string }) => o.name), [
    "output0",
    "output1",
    "output2",
  ]);
  assert.deepEqual(all.outputs[1].data, [1, 2, 3, 4]);
  assert.deepEqual(all.outputs[2].data, [true, false, true]);
  // Data flat at its start and nested further in is not row-major data: refused, naming where.
  const mixed = await t.request(
    "/v2/models/mymodel/infer",
    post({
      inputs: [
        { name: "input0", shape: [3], datatype: "UINT32", data: [1, [2], 3] },
        { name: "input1", shape: [3], datatype: "BOOL", data: [true, false, true] },
      ],
    }),
  );
  await refused(
    mixed,
    400,
    /input "input0": data\[1\] is not a number/,
    "inference_error_response",
  );

  // The binary extension's own example: 16 + 3 bytes in, output0's 24 bytes out.
  const response = await t.request(
    "/v2/models/mymodel/infer",
    binaryBody({
      model_name: "mymodel",
      inputs: [
        {
          name: "input0",
          shape: [2, 2],
          datatype: "UINT32",
          parameters: { binary_data_size: 16 },
        },
        { name: "input1", shape: [3], datatype: "BOOL", parameters: { binary_data_size: 3 } },
      ],
      outputs: [{ name: "output0", parameters: { binary_data: true } }],
    }, [new Uint8Array(Uint32Array.of(1, 2, 3, 4).buffer), Uint8Array.of(1, 0, 1)]),
  );
  assert.equal(response.status, 200);
  const { header, binary } = await readBinary(response);
  conforms(docs("binary_inference_response"), header);
  assert.deepEqual(header.outputs, [{
    name: "output0",
    shape: [3, 2],
    datatype: "FP32",
    parameters: { binary_data_size: 24 },
  }]);
  assert.deepEqual([...new Float32Array(binary.slice().buffer)], SPEC_OUTPUT0.map(Math.fround));
});

for (const engine of ["native", "wasm"] as const) {
  Deno.test(`v2 - every element type round-trips through a real infer on the ${engine} engine, as binary data and as JSON`, async () => {
    await using t = await startWithModels({ cpuEngine: engine });
    assert.equal(t.service.services.cpuEngine?.engine ?? "wasm", engine);
    const parts = TENSOR_TYPES.map((type) => encodeTensorBytes(sampleTensor(type)));
    const header = {
      id: "round-trip",
      parameters: { binary_data_output: true },
      inputs: TENSOR_TYPES.map((type, i) => ({
        name: `in_${type}`,
        shape: [3, 2],
        datatype: OIP_DATATYPES[type],
        parameters: { binary_data_size: parts[i].length },
      })),
    };
    const response = await t.request("/v2/models/identities/infer", binaryBody(header, parts));
    assert.equal(response.status, 200, response.status === 200 ? "" : await response.text());
    const answer = await readBinary(response);
    conforms(docs("binary_inference_response"), answer.header);
    assert.equal(answer.header.id, "round-trip");
    let at = 0;
    for (const [i, type] of TENSOR_TYPES.entries()) {
      const output = answer.header.outputs[i];
      assert.deepEqual(output, {
        name: `out_${type}`,
        shape: [3, 2],
        datatype: OIP_DATATYPES[type],
        parameters: { binary_data_size: parts[i].length },
      });
      const bytes = answer.binary.subarray(at, at + parts[i].length);
      assert.deepEqual([...bytes], [...parts[i]], `${type}: the bytes back are the bytes sent`);
      at += parts[i].length;
    }
    assert.equal(at, answer.binary.length, "nothing after the last output");

    // JSON in, JSON out (FP16 has no JSON form: it goes in as bytes, comes out as numbers);
    // one output asked back as binary overrides the JSON default.
    const jsonTypes = TENSOR_TYPES.filter((type) => type !== "float16");
    const half = encodeTensorBytes(sampleTensor("float16"));
    const mixed = await t.request(
      "/v2/models/identities/infer",
      binaryBody({
        inputs: [
          ...jsonTypes.map((type) => ({
            name: `in_${type}`,
            shape: [3, 2],
            datatype: OIP_DATATYPES[type],
            data: jsonValues(type),
          })),
          {
            name: "in_float16",
            shape: [3, 2],
            datatype: "FP16",
            parameters: { binary_data_size: half.length },
          },
        ],
        outputs: [
          ...jsonTypes.map((type) => ({ name: `out_${type}` })),
          { name: "out_float16" },
          { name: "out_uint32", parameters: { binary_data: true } },
        ],
      }, [half]),
    );
    assert.equal(mixed.status, 200, mixed.status === 200 ? "" : await mixed.text());
    const { header: body, binary } = await readBinary(mixed);
    const outputs = body.outputs as Array<{ name: string; data?: unknown[] }>;
    for (const [i, type] of jsonTypes.entries()) {
      assert.equal(outputs[i].name, `out_${type}`);
      assert.deepEqual(outputs[i].data, jsonValues(type), `${type} as JSON`);
    }
    assert.deepEqual(outputs[jsonTypes.length].data, [1, -2, 65504, 2 ** -24, 0, 0.333251953125]);
    assert.deepEqual([...binary], [...encodeTensorBytes(sampleTensor("uint32"))]);
    // The JSON-only outputs validate as the protocol's response outputs.
    for (const output of outputs.slice(0, -1)) conforms(oip("response_output"), output);
  });
}

Deno.test("v2 - wrong sizes, types and names are refused with the tensor's name (400)", async () => {
  await using t = await startWithModels();
  const infer = (init: RequestInit) => t.request("/v2/models/mymodel/infer", init);
  const input1 = { name: "input1", shape: [3], datatype: "BOOL", data: [true, false, true] };
  const binaryInput0 = (size: number) => ({
    inputs: [
      { name: "input0", shape: [2, 2], datatype: "UINT32", parameters: { binary_data_size: size } },
      input1,
    ],
  });
  const e = "inference_error_response";
  // A byte count that does not match the shape.
  await refused(
    await infer(binaryBody(binaryInput0(15), [new Uint8Array(15)])),
    400,
    /input "input0": shape \[2, 2\] of uint32 needs 16 bytes .* 15 were sent/,
    e,
  );
  // binary_data_size past the end of the body, and bytes left over after the inputs.
  await refused(
    await infer(binaryBody(binaryInput0(16), [new Uint8Array(8)])),
    400,
    /input "input0": binary_data_size 16 runs past the body/,
    e,
  );
  await refused(
    await infer(binaryBody(binaryInput0(16), [new Uint8Array(20)])),
    400,
    /4 bytes of binary data follow/,
    e,
  );
  // A datatype Headroom does not serve, and one the model does not take.
  await refused(
    await infer(post({ inputs: [{ ...input1, datatype: "BF16" }] })),
    400,
    /input "input1": datatype "BF16" is not served: expected one of FP32, FP16, FP64, .*BYTES/,
    e,
  );
  await refused(
    await infer(post({
      inputs: [{ name: "input0", shape: [2, 2], datatype: "INT32", data: [1, 2, 3, 4] }, input1],
    })),
    400,
    /Input "input0" has type int32: expected uint32/,
    e,
  );
  // JSON data of the wrong count or kind; BYTES whose lengths run past the bytes.
  await refused(
    await infer(post({
      inputs: [{ name: "input0", shape: [2, 2], datatype: "UINT32", data: [1, 2, 3] }, input1],
    })),
    400,
    /input "input0".*4 elements.*3/,
    e,
  );
  await refused(
    await infer(post({
      inputs: [{ name: "input0", shape: [2, 2], datatype: "UINT32", data: ["a", 2, 3, 4] }, input1],
    })),
    400,
    /input "input0": data\[0\] is not a number/,
    e,
  );
  const strings = new Uint8Array(6);
  new DataView(strings.buffer).setUint32(0, 10, true);
  await refused(
    await t.request(
      "/v2/models/identities/infer",
      binaryBody({
        inputs: [{
          name: "in_string",
          shape: [1, 1],
          datatype: "BYTES",
          parameters: { binary_data_size: 6 },
        }],
      }, [strings]),
    ),
    400,
    /input "in_string": BYTES element 0 says 10 bytes but only 2 remain/,
    e,
  );
  // onnxruntime-node would cut a string at a NUL: refused, naming the input, not corrupted.
  const nul = encodeTensorBytes({ type: "string", dims: [1, 1], data: ["a\u0000b"] });
  await refused(
    await t.request(
      "/v2/models/identities/infer",
      binaryBody({
        inputs: [{
          name: "in_string",
          shape: [1, 1],
          datatype: "BYTES",
          parameters: { binary_data_size: nul.length },
        }],
      }, [nul]),
    ),
    400,
    /input "in_string": BYTES element 0 holds a NUL byte/,
    e,
  );
  // A missing or unknown input, an output the model does not have, a bad header length.
  await refused(await infer(post({ inputs: [input1] })), 400, /Missing input "input0"/, e);
  await refused(
    await infer(post({
      inputs: [{ name: "input0", shape: [2, 2], datatype: "UINT32", data: [1, 2, 3, 4] }, input1],
      outputs: [{ name: "output9" }],
    })),
    400,
    /output "output9" is not an output of model "mymodel": expected one of "output0"/,
    e,
  );
  // Names are data, never an object's own properties.
  await refused(
    await infer(post({
      inputs: [{ name: "input0", shape: [2, 2], datatype: "UINT32", data: [1, 2, 3, 4] }, input1],
      outputs: [{ name: "constructor" }],
    })),
    400,
    /output "constructor" is not an output/,
    e,
  );
  await refused(
    await infer(post({ inputs: [input1, input1] })),
    400,
    /input "input1" is given twice/,
    e,
  );
  await refused(
    await infer({
      ...binaryBody(binaryInput0(16), [new Uint8Array(16)]),
      headers: {
        "content-type": "application/octet-stream",
        "inference-header-content-length": "99999",
      },
    }),
    400,
    /Inference-Header-Content-Length "99999"/,
    e,
  );
  await refused(
    await infer({ method: "POST", headers: { "content-type": "text/plain" }, body: "{}" }),
    415,
    /application\/json or application\/octet-stream/,
    e,
  );
  await refused(await t.request("/v2/models/nope/infer", post({})), 404, /nope/, e);
});

Deno.test("v2 - a body without Content-Type (as Triton's client sends it) is taken; a foreign page is not", async () => {
  await using t = await startWithModels();
  const body = binaryBody({
    inputs: [
      { name: "input0", shape: [2, 2], datatype: "UINT32", parameters: { binary_data_size: 16 } },
      { name: "input1", shape: [3], datatype: "BOOL", data: [true, false, true] },
    ],
    outputs: [{ name: "output1" }],
  }, [new Uint8Array(Uint32Array.of(5, 6, 7, 8).buffer)]);
  const headers = {
    "inference-header-content-length": body.headers!["inference-header-content-length" as never],
  };
  const untyped = await t.request("/v2/models/mymodel/infer", { ...body, headers });
  const answer = await untyped.json();
  assert.equal(untyped.status, 200, JSON.stringify(answer));
  assert.deepEqual(answer.outputs[0].data, [5, 6, 7, 8]);
  const unload = await t.request("/v2/repository/models/mymodel/unload", {
    method: "POST",
    // Bytes, not a string: a string body would get text/plain from `Request` itself.
    body: new TextEncoder().encode(JSON.stringify({ parameters: { unload_dependents: false } })),
  });
  assert.equal(unload.status, 200);
  await refused(
    await t.request("/v2/repository/models/mymodel/load", {
      method: "POST",
      headers: { origin: "https://evil.example" },
      body: new TextEncoder().encode("{}"),
    }),
    403,
    /Origin "https:\/\/evil.example" may not call/,
    "metadata_model_error_response",
  );
  assert.equal(t.service.services.scheduler.model("mymodel").state, "unloaded");
});

Deno.test("v2 - the model repository lists, loads and unloads through the scheduler", async () => {
  await using t = await startWithModels();
  const index = async (body?: unknown) => {
    const response = await t.request(
      "/v2/repository/index",
      body === undefined ? { method: "POST" } : post(body),
    );
    assert.equal(response.status, 200);
    const entries = await response.json();
    conforms(docs("repository_index_response"), entries);
    return entries as Array<{ name: string; state: string; version: string }>;
  };
  assert.deepEqual((await index()).map((m) => [m.name, m.state, m.version]), [
    ["identities", "UNAVAILABLE", "1"],
    ["mymodel", "UNAVAILABLE", "1"],
  ]);
  assert.deepEqual(await index({ ready: true }), []);

  const load = await t.request("/v2/repository/models/mymodel/load", post({}));
  assert.equal(load.status, 200);
  assert.equal(await load.text(), "", "an empty 200, as Triton answers");
  assert.equal(
    t.service.services.scheduler.model("mymodel").state,
    "cpu",
    "placed by the scheduler",
  );
  assert.deepEqual((await index({ ready: true })).map((m) => m.name), ["mymodel"]);
  assert.equal((await t.request("/v2/models/mymodel/ready")).status, 200);

  const unload = await t.request(
    "/v2/repository/models/mymodel/unload",
    post({
      parameters: { unload_dependents: false },
    }),
  );
  assert.equal(unload.status, 200);
  assert.equal(t.service.services.scheduler.model("mymodel").state, "unloaded");
  assert.equal((await t.request("/v2/models/mymodel/ready")).status, 400);

  // An inference request loads an unloaded model, as on every route.
  const infer = await t.request(
    "/v2/models/mymodel/infer",
    post({
      inputs: [
        { name: "input0", shape: [2, 2], datatype: "UINT32", data: [1, 2, 3, 4] },
        { name: "input1", shape: [3], datatype: "BOOL", data: [true, false, true] },
      ],
      outputs: [{ name: "output0" }],
    }),
  );
  assert.equal(infer.status, 200);
  await infer.body?.cancel();
  assert.equal(t.service.services.scheduler.model("mymodel").state, "cpu");

  const e = "metadata_model_error_response";
  await refused(
    await t.request(
      "/v2/repository/models/mymodel/load",
      post({ parameters: { config: "{}" } }),
    ),
    400,
    /parameters\.config.*models file/,
    e,
  );
  await refused(
    await t.request("/v2/repository/index", post({ ready: "yes" })),
    400,
    /ready/,
    e,
  );
  await refused(
    await t.request("/v2/repository/models/nope/load", { method: "POST" }),
    404,
    /nope/,
    e,
  );
});

Deno.test("v2 - the token rules and the OpenAPI document cover the v2 routes", async () => {
  const token = "a-test-token-of-16+chars";
  await using t = await startWithModels({ token, tokenForInfer: true });
  const auth = { authorization: `Bearer ${token}` };
  assert.equal((await t.request("/v2")).status, 200, "reads stay open");
  await refused(
    await t.request("/v2/repository/models/mymodel/load", { method: "POST" }),
    401,
    /token/,
    "metadata_model_error_response",
  );
  await refused(
    await t.request("/v2/models/mymodel/infer", post({})),
    401,
    /token/,
    "inference_error_response",
  );
  const unload = await t.request("/v2/repository/models/mymodel/unload", {
    method: "POST",
    headers: auth,
  });
  assert.equal(unload.status, 200);

  const doc = await (await t.request("/api/openapi.json", { headers: auth })).json();
  const infer = doc.paths["/v2/models/{name}/infer"].post;
  assert.deepEqual(infer.security, [{ bearer: [] }]);
  assert.ok(infer.requestBody.content["application/octet-stream"], "the binary extension's body");
  assert.equal(
    infer.requestBody.content["application/json"].schema.properties.inputs.type,
    "array",
  );
  assert.equal(
    infer.responses["4XX"].content["application/json"].schema.properties.error.type,
    "string",
  );
  for (
    const path of [
      "/v2",
      "/v2/health/live",
      "/v2/health/ready",
      "/v2/models/{name}",
      "/v2/models/{name}/versions/{version}",
      "/v2/models/{name}/ready",
      "/v2/models/{name}/versions/{version}/ready",
      "/v2/models/{name}/versions/{version}/infer",
      "/v2/repository/index",
      "/v2/repository/models/{name}/load",
      "/v2/repository/models/{name}/unload",
    ]
  ) assert.ok(doc.paths[path], `${path} is documented`);
  assert.equal(doc.paths["/v2/repository/models/{name}/load"].post.security[0].bearer.length, 0);
});
