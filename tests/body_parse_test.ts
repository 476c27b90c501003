// Large JSON bodies are parsed off the main thread (issue 20, item 2): from 256 KiB a body
// is parsed in a body worker, its tensor data comes back as a Float64Array and its chat
// images decoded, by transfer; the main thread never runs JSON.parse or a base64 decode
// over the large text. Small bodies stay on the main thread; bad input is still a 400
// naming the field. The health figure under load is in tests/json_bounds_test.ts.
import assert from "node:assert/strict";
import { createApp } from "../server/app.ts";
import { type Handlers, route, type RouteConfig } from "../server/http/context.ts";
import { bodyPool, OFF_THREAD_MIN_BYTES, readMultipartFile } from "../server/http/body_pool.ts";
import { LIFT_MIN_ELEMENTS, parseJsonBytes } from "../server/http/json_body.ts";
import { jsonToWire } from "../server/http/tensors.ts";
import { bodySchema as inferBody } from "../routes/api/v1/pipelines/[id]/infer.ts";
import { config as chatConfig } from "../routes/v1/chat/completions.ts";
import { readMessages } from "../server/openai/messages.ts";
import { startService } from "../server/service.ts";
import { testConfig } from "./_service.ts";

const bytes = (text: string) => [new TextEncoder().encode(text)];

Deno.test("json body - long number arrays are lifted at the route's paths only; data URLs decoded; the rest as JSON.parse reads it", () => {
  const long = Array.from({ length: LIFT_MIN_ELEMENTS }, (_, i) => i / 2);
  const image = new Uint8Array(70_000).fill(7);
  const url = `data:image/png;base64,${image.toBase64()}`;
  const { value, buffers } = parseJsonBytes(
    bytes(JSON.stringify({
      inputs: { a: { data: long }, b: { data: [1, 2] }, c: { data: [...long.slice(1), "x"] } },
      payload: { data: long },
      messages: [{ content: [{ image_url: { url } }, { image_url: { url: `${url}!` } }] }],
    })),
    { numbers: ["inputs.*.data"], dataUrls: ["messages.*.content.*.image_url.url"] },
  );
  const body = value as {
    inputs: Record<string, { data: unknown }>;
    payload: { data: unknown };
    messages: [{ content: [{ image_url: { url: unknown } }, { image_url: { url: unknown } }] }];
  };
  assert.ok(body.inputs.a.data instanceof Float64Array);
  assert.deepEqual(Array.from(body.inputs.a.data), long);
  assert.deepEqual(body.inputs.b.data, [1, 2], "a short array stays an array");
  assert.ok(Array.isArray(body.inputs.c.data), "an array with a string stays for the schema");
  assert.deepEqual(body.payload.data, long, "a plugin's payload is never rewritten");
  const decoded = body.messages[0].content[0].image_url.url as {
    header: string;
    bytes: Uint8Array;
  };
  assert.equal(decoded.header, "data:image/png;base64,");
  assert.deepEqual(decoded.bytes, image);
  assert.equal(typeof body.messages[0].content[1].image_url.url, "string", "bad base64 stays");
  assert.equal(buffers.length, 2);
  assert.deepEqual(parseJsonBytes(bytes("  ")).value, {}, "an empty body is {}");
  assert.throws(() => parseJsonBytes(bytes("{nope")), SyntaxError);
});

Deno.test("json body - a lifted tensor converts as its JSON array would, bad values named", () => {
  const data = Float64Array.from({ length: 2048 }, (_, i) => i - 1024.5);
  const [viaArray, viaLifted] = [Array.from(data), data].map((d) =>
    jsonToWire({ x: { type: "int32", dims: [2048], data: d } }).x.data
  );
  assert.deepEqual(viaLifted, viaArray);
  data[7] = Infinity;
  assert.throws(
    () => jsonToWire({ x: { type: "float64", dims: [2048], data } }),
    /input "x": data\[7\] is not a number for type float64/,
  );
  assert.throws(
    () => jsonToWire({ x: { type: "string", dims: [2048], data } }),
    /input "x": data\[0\] is not a string/,
  );
});

/** What the test routes' handlers were given. */
let seen: unknown = null;

const inferConfig = {
  summary: "infer's body and lift, echoed",
  auth: "read",
  bodyLimit: 64 * 2 ** 20,
  body: inferBody,
  lift: { numbers: ["inputs.*.data"] },
} satisfies RouteConfig;

const inferHandler: Handlers<"/infer", typeof inferConfig> = {
  POST: (c) => {
    const body = c.req.valid("json");
    seen = body;
    const x = body.inputs!.x;
    return c.json({ lifted: x.data instanceof Float64Array, n: x.data.length });
  },
};

const chatHandler: Handlers<"/chat", typeof chatConfig> = {
  POST: (c) => {
    const messages = readMessages(c.req.valid("json"));
    return c.json({ sizes: messages[0].images.map((image) => image.length) });
  },
};

/** Calls `fn`, recording the length of every large text the main thread parsed or decoded. */
async function mainThreadWork<T>(fn: () => T | Promise<T>): Promise<[T, number[]]> {
  const large: number[] = [];
  const parse = JSON.parse;
  const fromBase64 = Uint8Array.fromBase64;
  JSON.parse = (text: string, ...rest) => {
    if (text.length >= OFF_THREAD_MIN_BYTES) large.push(text.length);
    return parse(text, ...rest);
  };
  Uint8Array.fromBase64 = (text: string, ...rest) => {
    if (text.length >= OFF_THREAD_MIN_BYTES) large.push(text.length);
    return fromBase64(text, ...rest);
  };
  try {
    return [await fn(), large];
  } finally {
    JSON.parse = parse;
    Uint8Array.fromBase64 = fromBase64;
  }
}

Deno.test("json body - a large infer or chat body is parsed and decoded in a body worker, never on the main thread; bad input is a 400 naming the field", async () => {
  await using service = await startService(testConfig({ gpu: "cpu" }));
  const app = createApp(service.services, [
    route("/infer", { handler: inferHandler, config: inferConfig }),
    route("/chat", { handler: chatHandler, config: chatConfig }),
  ]);
  const post = (path: string, body: string) =>
    app.request(path, { method: "POST", headers: { "content-type": "application/json" }, body });
  const tensor = (n: number) =>
    JSON.stringify({
      inputs: {
        x: { type: "float32", dims: [n], data: Array.from({ length: n }, (_, i) => Math.sqrt(i)) },
      },
    });
  try {
    // 1 MiB of tensor data: parsed in a worker, data handed over as a Float64Array.
    const jobs = bodyPool.jobs;
    const [large, work] = await mainThreadWork(() => post("/infer", tensor(60_000)));
    assert.equal(large.status, 200, await large.clone().text());
    assert.deepEqual(await large.json(), { lifted: true, n: 60_000 });
    assert.equal(bodyPool.jobs, jobs + 1, "the body went to a body worker");
    assert.deepEqual(work, [], "the main thread parsed no large text");
    const x = (seen as { inputs: { x: { data: Float64Array } } }).inputs.x;
    assert.equal(x.data[4], 2);

    // A small body stays on the main thread, lifted the same way.
    const small = await post("/infer", tensor(2_000));
    assert.deepEqual(await small.json(), { lifted: true, n: 2_000 });
    assert.equal(bodyPool.jobs, jobs + 1, "no worker hop for a small body");

    // Three 2 MiB chat images: decoded in the worker, checked on the main thread.
    const image = new Uint8Array(2 * 2 ** 20);
    image.set([0x89, 0x50, 0x4e, 0x47]);
    const part = {
      type: "image_url",
      image_url: { url: `data:image/png;base64,${image.toBase64()}` },
    };
    const chat = JSON.stringify({
      model: "echo",
      messages: [{ role: "user", content: [part, part, part] }],
    });
    const [answered, chatWork] = await mainThreadWork(() => post("/chat", chat));
    assert.equal(answered.status, 200, await answered.clone().text());
    assert.deepEqual(await answered.json(), { sizes: [image.length, image.length, image.length] });
    assert.deepEqual(chatWork, [], "the main thread decoded no large base64");

    // Bad input in a large body: the same 400s as a small one, naming the field.
    const refused: Array<[string, string, string, RegExp]> = [
      ["/infer", `${tensor(60_000)}}`, "bad_json", /The body is not valid JSON/],
      [
        "/infer",
        tensor(60_000).replace('"float32"', '"complex"'),
        "bad_body",
        /field "inputs.x.type"/,
      ],
      [
        "/chat",
        chat.replace("data:image/png;base64,", "data:image/png;base64,*"),
        "invalid_image_url",
        /messages\.0\.content\.0\.image_url\.url: the base64 data is not valid/,
      ],
      [
        "/chat",
        chat.replace("data:image/png;", "data:image/gif;"),
        "invalid_image_url",
        /messages\.0\.content\.0\.image_url\.url: expected a base64 data URL of a PNG or JPEG/,
      ],
      [
        "/infer",
        `{"payload":${"[".repeat(150_000)}1${"]".repeat(150_000)}}`,
        "bad_body",
        /nests arrays or objects too deeply to be read; send flatter JSON/,
      ],
    ];
    for (const [path, body, code, message] of refused) {
      const response = await post(path, body);
      const answer = await response.json();
      assert.equal(response.status, 400, JSON.stringify(answer));
      const error = answer.error as { code: string; message: string };
      assert.equal(error.code, code);
      assert.match(error.message, message);
    }
  } finally {
    bodyPool.close();
  }
});

Deno.test("multipart - a large upload's file is read in a body worker, never on the main thread; small ones here; a broken body says why", async () => {
  const upload = async (bytes: Uint8Array<ArrayBuffer>, name = "image") => {
    const form = new FormData();
    form.append(name, new File([bytes], "a.png", { type: "image/png" }));
    const request = new Request("http://x/", { method: "POST", body: form });
    return {
      body: new Uint8Array(await request.arrayBuffer()),
      type: request.headers.get("content-type")!,
    };
  };
  const formData = Request.prototype.formData;
  let mainThreadParses = 0;
  Request.prototype.formData = function (this: Request) {
    mainThreadParses++;
    return formData.call(this);
  };
  try {
    const image = Uint8Array.from({ length: 2 ** 20 }, (_, i) => i % 251);
    const jobs = bodyPool.jobs;
    const large = await upload(image);
    const read = await readMultipartFile(large.body, large.type, "image");
    assert.deepEqual(read, { ok: true, bytes: image });
    assert.equal(bodyPool.jobs, jobs + 1, "the upload went to a body worker");
    assert.equal(mainThreadParses, 0, "the main thread parsed no large form");

    const small = await upload(image.slice(0, 1000));
    assert.deepEqual(await readMultipartFile(small.body, small.type, "image"), {
      ok: true,
      bytes: image.slice(0, 1000),
    });
    assert.equal(mainThreadParses, 1, "a small form is read here");

    const other = await upload(image, "picture");
    assert.deepEqual(await readMultipartFile(other.body, other.type, "image"), {
      ok: true,
      bytes: null,
    });
    // The large body moved to the worker (detached here); a fresh one, cut short.
    const cut = (await upload(image)).body.slice(0, 500_000);
    const broken = await readMultipartFile(cut, large.type, "image");
    assert.equal(broken.ok, false);
  } finally {
    Request.prototype.formData = formData;
    bodyPool.close();
  }
});

Deno.test({
  name:
    "json body - a large v2 JSON inference body is parsed in a body worker; its rows answer as small requests do",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = Deno.makeTempDirSync({ prefix: "headroom-v2-large-" });
    Deno.writeTextFileSync(
      `${dir}/models.json`,
      JSON.stringify({ models: [{ id: "m", source: "synthetic:1MiB" }] }),
    );
    await using service = await startService(
      testConfig({ gpu: "cpu", cpuEngine: "native", modelsFile: `${dir}/models.json` }),
    );
    const rows = 600, width = 256; // 153,600 values: ~3 MB of JSON
    const values = Array.from({ length: rows * width }, (_, i) => Math.sin(i) / 3);
    const v2 = (n: number, data: number[]) =>
      service.app.request("/v2/models/m/infer", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          inputs: [{ name: "input", shape: [n, width], datatype: "FP32", data }],
        }),
      });
    const jobs = bodyPool.jobs;
    const [large, work] = await mainThreadWork(() => v2(rows, values));
    const body = await large.json();
    assert.equal(large.status, 200, JSON.stringify(body).slice(0, 300));
    assert.equal(bodyPool.jobs, jobs + 1, "the body went to a body worker");
    assert.deepEqual(work, [], "the main thread parsed no large text");
    assert.deepEqual(body.outputs[0].shape, [rows, width]);
    const small = await (await v2(1, values.slice(0, width))).json();
    assert.deepEqual(body.outputs[0].data.slice(0, width), small.outputs[0].data, "row 0");
    // A bad large body is still a 400 naming the field.
    const bad = await v2(rows, [...values.slice(1), "x" as unknown as number]);
    assert.equal(bad.status, 400);
    assert.match((await bad.json()).error, /input "input": data\[153599\]/);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  },
});
