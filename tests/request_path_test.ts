/**
 * What keeps one request's path cheap, each able to fail when it goes: tensors cross the
 * worker boundary transferred (the sender's buffer is detached after posting; the outputs
 * arrive owning their buffers), binary inputs are views of the body (read at an 8-byte
 * boundary), binary outputs are never formatted as JSON numbers, and a run reply leaves out
 * a status that did not change.
 */
import assert from "node:assert/strict";
import { WorkerClient } from "../workers/client.ts";
import { pipelineSpec } from "../workers/spec.ts";
import { DEFAULT_ORT_NODE_DIR } from "../workers/engines/choose.ts";
import { encodeTensorBytes } from "../server/oip/binary.ts";
import {
  answerResponse,
  inferenceAnswer,
  parseInferenceBody,
  readInferenceBody,
} from "../server/oip/infer.ts";
import type { WireTensor } from "../core/pipelines/protocol.ts";
import { tempDirSync } from "./_temp.ts";
import { oneInputModel } from "./fixtures/oip_models.ts";

for (const engine of ["native", "wasm"] as const) {
  Deno.test(`request path - client.run transfers the tensors both ways (${engine} engine)`, async () => {
    const dir = tempDirSync("headroom-path-");
    const modelPath = `${dir}/one.onnx`;
    Deno.writeFileSync(modelPath, oneInputModel());
    const client = await WorkerClient.start(
      await pipelineSpec({
        modelId: "one",
        modelPath,
        cpuEngine: engine,
        ortNodeDir: engine === "native" ? DEFAULT_ORT_NODE_DIR : null,
      }),
    );
    try {
      assert.ok((await client.load("cpu")).ok);
      const data = Float32Array.of(1, 2, 3, 4, 5, 6);
      const sent = data.buffer;
      const reply = client.run({ x: { type: "float32", dims: [2, 3], data } });
      // Posted with a transfer list: the buffer moved to the worker, nothing was copied.
      assert.equal(sent.byteLength, 0, "the sender's buffer is detached after posting");
      assert.equal(data.length, 0);
      const answer = await reply;
      assert.ok(answer.ok, JSON.stringify(answer));
      const y = (answer.output as { tensors: Record<string, WireTensor> }).tensors.y;
      assert.deepEqual([...y.data as Float32Array], [1, 2, 3, 4, 5, 6]);
      // The worker sent a buffer of its own (transferable), not a view into a larger one.
      const bytes = y.data as Float32Array;
      assert.equal(bytes.byteOffset, 0);
      assert.equal(bytes.buffer.byteLength, bytes.byteLength);
    } finally {
      client.terminate();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  });
}

Deno.test("request path - a run reply leaves out an unchanged status; the client fills it in", async () => {
  const dir = tempDirSync("headroom-path-");
  const modelPath = `${dir}/one.onnx`;
  Deno.writeFileSync(modelPath, oneInputModel());
  // What the worker posts, before the client reads it: wrap the client's message listener.
  const posted: Array<Record<string, unknown>> = [];
  const listen = Worker.prototype.addEventListener;
  Worker.prototype.addEventListener = function (this: Worker, type: string, ...rest: unknown[]) {
    const [listener, options] = rest as [(event: MessageEvent) => void, undefined];
    const seen = type === "message"
      ? (event: MessageEvent) => {
        posted.push({ ...event.data });
        listener(event);
      }
      : listener;
    return listen.call(this, type, seen as EventListener, options);
  } as typeof listen;
  let client: WorkerClient | undefined;
  try {
    client = await WorkerClient.start(
      await pipelineSpec({
        modelId: "one",
        modelPath,
        cpuEngine: "native",
        ortNodeDir: DEFAULT_ORT_NODE_DIR,
      }),
    );
    Worker.prototype.addEventListener = listen;
    const loaded = await client.load("cpu");
    assert.ok(loaded.ok);
    const runs = [];
    for (let i = 0; i < 4; i++) {
      runs.push(
        await client.run({ x: { type: "float32", dims: [1, 3], data: Float32Array.of(i, 1, 2) } }),
      );
    }
    const [, loadSent, ...runsSent] = posted; // init, load, the runs
    assert.equal(loadSent.type, "load");
    assert.ok("status" in loadSent, "a load reply always carries the status");
    assert.ok(runsSent.every((r) => r.type === "run"));
    // The RSS figure is read afresh once a second at most: one run may carry a new status.
    const withStatus = runsSent.filter((r) => "status" in r).length;
    assert.ok(withStatus <= 1, `${withStatus} of 4 run replies resent an unchanged status`);
    for (const run of runs) {
      assert.ok(run.ok);
      // Figures but the RSS reading (refreshed once a second) stay as the load left them.
      assert.deepEqual(
        { ...run.status, rssBytes: 0 },
        { ...loaded.status, rssBytes: 0 },
        "the client fills in the last status",
      );
    }
    assert.equal(client.lastStatus.device, "cpu");
  } finally {
    Worker.prototype.addEventListener = listen;
    client?.terminate();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

/** A binary-extension body: the JSON header (`pad` spaces make its length), then `bytes`. */
function binaryBody(
  bytes: Uint8Array,
  pad = 0,
  rows = 2,
): { body: Uint8Array; headerLength: number } {
  const header = new TextEncoder().encode(
    JSON.stringify({
      inputs: [{
        name: "x",
        shape: [rows, 3],
        datatype: "FP32",
        parameters: { binary_data_size: bytes.length },
      }],
    }) + " ".repeat(pad),
  );
  const body = new Uint8Array(header.length + bytes.length);
  body.set(header);
  body.set(bytes, header.length);
  return { body, headerLength: header.length };
}

Deno.test("request path - binary inputs are views of a body read at an 8-byte boundary", async () => {
  // A small body (read whole) and one of 96 KiB (read chunk by chunk), at every offset.
  for (const rows of [2, 8192]) {
    for (let pad = 0; pad < 8; pad++) await readsAligned(rows, pad);
  }
});

/** Reads a body of `rows` × 3 float32 whose header ends `pad` bytes past a boundary, and checks it. */
async function readsAligned(rows: number, pad: number): Promise<void> {
  const values = Float32Array.from({ length: rows * 3 }, (_, i) => i * 1.5 - 2);
  const { body, headerLength } = binaryBody(
    encodeTensorBytes({ type: "float32", dims: [rows, 3], data: values }),
    pad,
    rows,
  );
  const request = new Request("http://localhost/v2/models/m/infer", {
    method: "POST",
    headers: { "content-length": String(body.length) },
    body: new Blob([body as Uint8Array<ArrayBuffer>]).stream(),
    duplex: "half",
  } as RequestInit);
  const read = await readInferenceBody(request, String(headerLength));
  assert.deepEqual(read, body, `${rows} rows, pad ${pad}: the same bytes`);
  assert.equal(
    (read.byteOffset + headerLength) % 8,
    0,
    `${rows} rows, pad ${pad}: the binary part is aligned`,
  );
  const { tensors } = parseInferenceBody(read, String(headerLength));
  const x = tensors.x.data as Float32Array;
  assert.deepEqual(x, values);
  assert.equal(x.buffer, read.buffer, `${rows} rows, pad ${pad}: a view of the body`);
}

/** A float32 tensor whose elements cannot be read one by one: JSON formatting would throw. */
function unreadable(): WireTensor {
  // Its bytes can be taken whole (buffer, offset, length); reading an element by index or
  // through the iterator throws.
  const data = new Proxy(Float32Array.of(1, 2, 3), {
    get(target, key) {
      if (key === Symbol.iterator || (typeof key === "string" && /^\d+$/.test(key))) {
        throw new Error("an element was read one by one");
      }
      return Reflect.get(target, key);
    },
  });
  return { type: "float32", dims: [3], data };
}

Deno.test("request path - a binary output is never formatted as JSON numbers", async () => {
  const request = parseInferenceBody(
    new TextEncoder().encode(JSON.stringify({
      inputs: [{ name: "x", shape: [1], datatype: "FP32", data: [0] }],
      parameters: { binary_data_output: true },
    })),
    undefined,
  ).request;
  const answer = inferenceAnswer("m", request, { y: unreadable() });
  assert.deepEqual(answer.json.outputs, [{
    name: "y",
    shape: [3],
    datatype: "FP32",
    parameters: { binary_data_size: 12 },
  }]);
  const body = new Uint8Array(await answerResponse(answer).arrayBuffer());
  assert.deepEqual(new Float32Array(body.slice(body.length - 12).buffer), Float32Array.of(1, 2, 3));
  // The same output as JSON reads every element: the guard above is a real one.
  const asJson = { ...request, parameters: {} };
  assert.throws(() => inferenceAnswer("m", asJson, { y: unreadable() }), /read one by one/);
});
