// The OpenAI-compatible surface, driven by the official `openai` npm client against a
// real server on loopback: list the models, read an image (PNG and JPEG) through the
// `ocr` chat model, the same as a stream, and errors in OpenAI's shape.
import assert from "node:assert/strict";
import OpenAI from "openai";
import jpeg from "jpeg-js";
import { decodeImage } from "../plugins/_image.ts";
import type { Config } from "../core/config.ts";
import { serveHeadroom } from "../server/serve_headroom.ts";

const FIXTURES = new URL("./fixtures/", import.meta.url);
const HELLO_PNG = Deno.readFileSync(new URL("ocr_hello.png", FIXTURES));
const HELLO_TEXT = "HELLO WORLD 2026\nHeadroom keeps VRAM";

/** Headroom served on 127.0.0.1:<free port>, and an OpenAI client pointed at it. */
async function serve(overrides: Partial<Config> = {}) {
  const headroom = await serveHeadroom({
    config: { gpu: "cpu", ...overrides },
    tempPrefix: "headroom-openai-",
  });
  const baseURL = `${headroom.url}/v1`;
  const client = new OpenAI({ baseURL, apiKey: overrides.token ?? "unused", maxRetries: 0 });
  return {
    client,
    baseURL,
    service: headroom.service,
    [Symbol.asyncDispose]: headroom.close,
  };
}

/** A models file without the OCR models: a plain model and the echo chat plugin. */
async function writeEchoModels(dir: string): Promise<string> {
  const modelsFile = `${dir}/models.json`;
  await Deno.writeTextFile(
    modelsFile,
    JSON.stringify({
      models: [
        { id: "tiny", source: "synthetic:64KiB" },
        {
          id: "echo",
          source: "synthetic:64KiB",
          plugin: new URL("echo_chat_plugin.ts", FIXTURES).pathname,
          tags: ["chat"],
        },
      ],
    }),
  );
  return modelsFile;
}

const dataUrl = (bytes: Uint8Array, type: string) => {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return `data:${type};base64,${btoa(binary)}`;
};

const imageMessage = (url: string, text = "What does this say?") => ({
  role: "user" as const,
  content: [
    { type: "text" as const, text },
    { type: "image_url" as const, image_url: { url } },
  ],
});

Deno.test("openai - the client lists the models and reads an image, plain and streamed", async () => {
  await using s = await serve();
  const list = await s.client.models.list();
  const ids = list.data.map((m) => m.id);
  assert.equal(ids[0], "ocr", "the chat model comes first");
  for (const id of ["ocr-det", "ocr-cls", "ocr-rec", "silero-vad"]) assert.ok(ids.includes(id));
  for (const model of list.data) {
    assert.equal(model.object, "model");
    assert.equal(model.owned_by, "headroom");
    assert.ok(Number.isInteger(model.created) && model.created > 1.7e9);
  }
  assert.equal((await s.client.models.retrieve("ocr")).id, "ocr");

  const question = "What does this say?";
  const completion = await s.client.chat.completions.create({
    model: "ocr",
    messages: [imageMessage(dataUrl(HELLO_PNG, "image/png"), question)],
  });
  assert.equal(completion.object, "chat.completion");
  assert.equal(completion.model, "ocr");
  assert.equal(completion.choices[0].message.role, "assistant");
  assert.equal(completion.choices[0].message.content, HELLO_TEXT);
  assert.equal(completion.choices[0].finish_reason, "stop");
  // usage counts characters (no tokenizer): the question in, the text read out.
  assert.deepEqual(completion.usage, {
    prompt_tokens: question.length,
    completion_tokens: HELLO_TEXT.length,
    total_tokens: question.length + HELLO_TEXT.length,
  });
  // It ran through the pipelines, which are loaded now.
  for (const id of ["ocr-det", "ocr-cls", "ocr-rec"]) {
    assert.equal(s.service.services.scheduler.model(id).state, "cpu", id);
  }

  const stream = await s.client.chat.completions.create({
    model: "ocr",
    messages: [imageMessage(dataUrl(HELLO_PNG, "image/png"))],
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = "";
  const finishes: Array<string | null> = [];
  let usage: OpenAI.CompletionUsage | undefined;
  let chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    assert.equal(chunk.object, "chat.completion.chunk");
    if (chunk.usage) usage = chunk.usage;
    for (const choice of chunk.choices) {
      text += choice.delta.content ?? "";
      finishes.push(choice.finish_reason);
    }
  }
  assert.equal(text, HELLO_TEXT);
  assert.ok(chunks >= 4, `${chunks} chunks: role, one per line, stop, usage`);
  assert.equal(finishes.at(-1), "stop");
  assert.equal(usage?.completion_tokens, HELLO_TEXT.length);

  // The raw stream ends with the [DONE] sentinel.
  const raw = await fetch(`${s.baseURL}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model: "ocr",
      stream: true,
      messages: [imageMessage(dataUrl(HELLO_PNG, "image/png"))],
    }),
  });
  assert.match(raw.headers.get("content-type")!, /text\/event-stream/);
  const body = await raw.text();
  assert.ok(body.trimEnd().endsWith("data: [DONE]"), body.slice(-80));
});

Deno.test("openai - a JPEG reads the same", async () => {
  await using s = await serve();
  const { rgb, width, height } = decodeImage(HELLO_PNG);
  const rgba = new Uint8Array(width * height * 4);
  for (let i = 0; i < width * height; i++) {
    rgba.set(rgb.subarray(i * 3, i * 3 + 3), i * 4);
    rgba[i * 4 + 3] = 255;
  }
  const encoded = jpeg.encode({ data: rgba, width, height }, 95);
  const completion = await s.client.chat.completions.create({
    model: "ocr",
    messages: [imageMessage(dataUrl(new Uint8Array(encoded.data), "image/jpeg"))],
  });
  assert.equal(completion.choices[0].message.content, HELLO_TEXT);
});

Deno.test("openai - errors come in OpenAI's shape and name the field", async () => {
  await using s = await serve();
  const expectError = async (
    body: Record<string, unknown>,
    status: number,
    check: (error: InstanceType<typeof OpenAI.APIError>) => void,
  ) => {
    try {
      // deno-lint-ignore no-explicit-any
      await s.client.chat.completions.create(body as any);
      assert.fail("expected an error");
    } catch (error) {
      assert.ok(error instanceof OpenAI.APIError, String(error));
      assert.equal(error.status, status, error.message);
      check(error);
    }
  };
  await expectError(
    { model: "ocr", messages: [imageMessage("https://example.com/cat.png")] },
    400,
    (error) => {
      assert.ok(error instanceof OpenAI.BadRequestError);
      assert.equal(error.type, "invalid_request_error");
      assert.equal(error.code, "unsupported_image_url");
      assert.equal(error.param, "messages.0.content.1.image_url.url");
      assert.match(error.message, /not fetched/);
    },
  );
  await expectError({ model: "gpt-4o", messages: [{ role: "user", content: "hi" }] }, 404, (e) => {
    assert.ok(e instanceof OpenAI.NotFoundError);
    assert.equal(e.param, "model");
    assert.match(e.message, /chat models here: ocr/);
  });
  await expectError({ model: "ocr-det", messages: [{ role: "user", content: "hi" }] }, 404, (e) => {
    assert.match(e.message, /without a chat capability/);
  });
  await expectError({ model: "ocr", messages: [{ role: "user", content: "hi" }] }, 400, (e) => {
    assert.equal(e.code, "no_image");
    assert.equal(e.param, "messages");
  });
  await expectError({ model: "ocr", messages: [] }, 400, (e) => {
    assert.match(e.message, /"messages": must hold at least one message/);
  });
  await expectError(
    { model: "ocr", messages: [imageMessage("data:image/png;base64,aGVsbG8=")] },
    400,
    (e) => assert.match(e.message, /neither a PNG nor a JPEG/),
  );
  // A bad priority header: 400 in OpenAI's shape, naming the header.
  const urgent = await fetch(`${s.baseURL}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-headroom-priority": "soon" },
    body: JSON.stringify({ model: "ocr", messages: [{ role: "user", content: "hi" }] }),
  });
  assert.equal(urgent.status, 400);
  const refused = await urgent.json();
  assert.equal(refused.error.code, "bad_header");
  assert.match(refused.error.message, /header "X-Headroom-Priority": expected high, normal or low/);
  // An unknown /v1 path answers in the same shape.
  const missing = await fetch(`${s.baseURL}/embeddings`, { method: "POST" });
  assert.equal(missing.status, 404);
  const body = await missing.json();
  assert.deepEqual(Object.keys(body.error).sort(), ["code", "message", "param", "type"]);
  assert.equal(body.error.type, "not_found_error");
});

Deno.test("openai - a models file without the OCR models: the routes name what they need", async () => {
  const dir = await Deno.makeTempDir({ prefix: "headroom-openai-models-" });
  try {
    const modelsFile = await writeEchoModels(dir);
    await using s = await serve({ modelsFile });
    const ids = (await s.client.models.list()).data.map((m) => m.id);
    assert.deepEqual(ids, ["echo", "tiny"], "no ocr without its pipelines; the chat plugin first");
    try {
      await s.client.chat.completions.create({
        model: "ocr",
        messages: [imageMessage(dataUrl(HELLO_PNG, "image/png"))],
      });
      assert.fail("expected a 404");
    } catch (error) {
      assert.ok(error instanceof OpenAI.NotFoundError);
      assert.match(error.message, /needs the models ocr-det, ocr-cls, ocr-rec/);
      assert.match(error.message, /lacks ocr-det, ocr-cls, ocr-rec/);
    }
    const ocr = await fetch(`${s.baseURL.replace("/v1", "")}/api/v1/ocr`, {
      method: "POST",
      headers: { "content-type": "image/png" },
      body: HELLO_PNG,
    });
    assert.equal(ocr.status, 404);
    assert.match((await ocr.json()).error.message, /POST \/api\/v1\/ocr needs the models ocr-det/);
    // A plugin tagged "chat" answers through the same client.
    const echo = await s.client.chat.completions.create({
      model: "echo",
      messages: [imageMessage(dataUrl(HELLO_PNG, "image/png"), "hi there")],
    });
    assert.equal(
      echo.choices[0].message.content,
      `user said: hi there [images: ${HELLO_PNG.length}]`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openai - with a token, the client's apiKey is the token", async () => {
  const token = "k".repeat(24);
  await using s = await serve({ token, tokenForInfer: true });
  const wrong = new OpenAI({ baseURL: s.baseURL, apiKey: "nope", maxRetries: 0 });
  await assert.rejects(
    () =>
      wrong.chat.completions.create({ model: "ocr", messages: [{ role: "user", content: "x" }] }),
    (error) => error instanceof OpenAI.AuthenticationError,
  );
  // The right token passes the guard (and then needs an image).
  await assert.rejects(
    () =>
      s.client.chat.completions.create({
        model: "ocr",
        messages: [{ role: "user", content: "x" }],
      }),
    (error) => error instanceof OpenAI.BadRequestError,
  );
});

Deno.test("openai - in exclusive mode a chat request for a model not loaded switches to it, recorded as an auto-switch", async () => {
  const dir = await Deno.makeTempDir({ prefix: "headroom-openai-models-" });
  try {
    const modelsFile = await writeEchoModels(dir);
    await using s = await serve({ modelsFile, mode: "exclusive" });
    const { scheduler, events } = s.service.services;
    await scheduler.load("tiny", "cpu");

    const completion = await s.client.chat.completions.create({
      model: "echo",
      messages: [{ role: "user", content: "hello" }],
    });
    assert.equal(completion.choices[0].message.content, "user said: hello [images: ]");
    assert.equal(scheduler.model("echo").placement, "cpu", "the requested model is loaded");
    assert.equal(scheduler.model("tiny").placement, "none", "the other one is unloaded");
    const switches = events.recent(50).filter((e) => e.kind === "auto-switch");
    assert.equal(switches.length, 1);
    assert.equal(switches[0].pipeline, "echo");
    assert.equal(switches[0].trigger, "chat");

    const metrics = await (await fetch(`${s.baseURL.replace("/v1", "")}/metrics`)).text();
    assert.match(metrics, /^headroom_auto_switches_total(\{[^}]*\})? 1$/m);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openai - POST /v1/models/switch to the chat model ocr switches its chain: the three pipelines, alone", async () => {
  await using s = await serve();
  const { scheduler } = s.service.services;
  await scheduler.load("silero-vad", "cpu");
  const listed = (await s.client.models.list()).data.map((m) => m.id);
  assert.ok(listed.includes("ocr"), "GET /v1/models lists ocr");
  const switched = await fetch(`${s.baseURL}/models/switch`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "ocr" }),
  });
  const body = await switched.json();
  assert.equal(switched.status, 200, JSON.stringify(body));
  assert.equal(body.model, "ocr");
  assert.deepEqual(body.models, ["ocr-det", "ocr-cls", "ocr-rec"]);
  assert.deepEqual(body.unloaded, ["silero-vad"]);
  for (const id of ["ocr-det", "ocr-cls", "ocr-rec"]) {
    assert.equal(scheduler.model(id).placement, "cpu", id);
  }
  assert.equal(scheduler.model("silero-vad").placement, "none");
  const unknown = await fetch(`${s.baseURL}/models/switch`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "ocrr" }),
  });
  assert.equal(unknown.status, 404);
});

Deno.test("openai - chat fields: OpenAI's ranges checked (400 naming the field), the fields Headroom does not act on named in a header, n answered", async () => {
  const dir = await Deno.makeTempDir({ prefix: "headroom-openai-models-" });
  try {
    await using s = await serve({ modelsFile: await writeEchoModels(dir) });
    const hello = [{ role: "user" as const, content: "hello" }];
    for (
      const [field, value, pattern] of [
        ["temperature", 99, /"temperature": must be from 0 to 2/],
        ["top_p", 1.5, /"top_p": must be from 0 to 1/],
        ["n", 0, /"n": must be from 1 to 128/],
        ["n", 500, /"n": must be from 1 to 128/],
        ["presence_penalty", -3, /"presence_penalty": must be from -2 to 2/],
        ["max_tokens", 0, /"max_tokens": must be at least 1/],
        ["top_logprobs", 21, /"top_logprobs": must be from 0 to 20/],
        ["stop", ["a", "b", "c", "d", "e"], /"stop": takes at most 4 sequences/],
        ["response_format", { type: "yaml" }, /"response_format.type": expected text, json_object/],
        ["logprobs", "yes", /"logprobs"/],
      ] as const
    ) {
      await assert.rejects(
        () =>
          s.client.chat.completions.create(
            // deno-lint-ignore no-explicit-any
            { model: "echo", messages: hello, [field]: value } as any,
          ),
        (error) => {
          assert.ok(error instanceof OpenAI.BadRequestError, `${field}: ${error}`);
          assert.match(error.message, pattern, `${field}=${JSON.stringify(value)}`);
          return true;
        },
      );
    }

    const { data, response } = await s.client.chat.completions.create({
      model: "echo",
      messages: hello,
      temperature: 0.2,
      tools: [{ type: "function", function: { name: "lookup", parameters: {} } }],
      response_format: { type: "json_object" },
      logprobs: true,
      top_p: null,
      n: 3,
      // deno-lint-ignore no-explicit-any
      ...{ my_extra: 1 } as any,
    }).withResponse();
    assert.equal(
      response.headers.get("x-headroom-ignored-fields"),
      "logprobs, my_extra, response_format, temperature, tools",
      "every field given and not acted on, null ones aside",
    );
    assert.deepEqual(data.choices.map((c) => [c.index, c.message.content]), [
      [0, "user said: hello [images: ]"],
      [1, "user said: hello [images: ]"],
      [2, "user said: hello [images: ]"],
    ]);

    const plain = await s.client.chat.completions.create({ model: "echo", messages: hello })
      .withResponse();
    assert.equal(plain.response.headers.get("x-headroom-ignored-fields"), null);

    const streamed = await s.client.chat.completions.create({
      model: "echo",
      messages: hello,
      stream: true,
      seed: 7,
      n: 2,
    }).withResponse();
    assert.equal(streamed.response.headers.get("x-headroom-ignored-fields"), "seed");
    const texts = ["", ""];
    for await (const chunk of streamed.data) {
      for (const choice of chunk.choices) texts[choice.index] += choice.delta.content ?? "";
    }
    assert.deepEqual(texts, ["user said: hello [images: ]", "user said: hello [images: ]"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
