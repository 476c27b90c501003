import assert from "node:assert/strict";
import { startOnFakeGpu } from "./_service.ts";
import { tempDirSync } from "./_temp.ts";

Deno.test("SSE - past HEADROOM_MAX_STREAMS a new stream gets 503 with Retry-After; a closed one frees its slot", async () => {
  await using t = await startOnFakeGpu({ maxStreams: 2 });
  const open = await Promise.all([1, 2].map(() => t.request("/api/v1/hardware/vram/stream")));
  assert.ok(open.every((r) => r.status === 200));
  // Read the first event of each so the streams are really running.
  const readers = open.map((r) => r.body!.getReader());
  await Promise.all(readers.map((r) => r.read()));
  const third = await t.request("/api/v1/hardware/vram/stream");
  assert.equal(third.status, 503);
  assert.equal(third.headers.get("retry-after"), "5");
  const body = await third.json();
  assert.equal(body.error.code, "too_many_streams");
  assert.match(body.error.message, /HEADROOM_MAX_STREAMS=2/);
  await readers[0].cancel(); // the client goes away
  let again: Response | null = null;
  for (let i = 0; i < 50; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    again = await t.request("/api/v1/hardware/vram/stream");
    if (again.status === 200) break;
    await again.body?.cancel();
  }
  assert.equal(again?.status, 200, "the closed stream's slot came back");
  await again?.body?.cancel();
  await readers[1].cancel();
});

Deno.test("CORS - off by default, on for listed origins only", async () => {
  {
    await using t = await startOnFakeGpu({});
    const response = await t.request("/api/v1/health", {
      headers: { origin: "https://evil.example" },
    });
    assert.equal(response.headers.get("access-control-allow-origin"), null);
  }
  await using t = await startOnFakeGpu({ corsOrigins: ["https://ops.example"] });
  const allowed = await t.request("/api/v1/health", { headers: { origin: "https://ops.example" } });
  assert.equal(allowed.headers.get("access-control-allow-origin"), "https://ops.example");
  const other = await t.request("/api/v1/health", { headers: { origin: "https://evil.example" } });
  assert.notEqual(other.headers.get("access-control-allow-origin"), "https://evil.example");
});

Deno.test("Access - --token-for-reads guards reads, --token-for-infer guards inference", async () => {
  const token = "r".repeat(20);
  const auth = { authorization: `Bearer ${token}` };
  {
    await using t = await startOnFakeGpu({ token, tokenForReads: true, gpu: "cpu" });
    assert.equal((await t.request("/api/v1/hardware/vram")).status, 401);
    assert.equal((await t.request("/api/v1/hardware/vram", { headers: auth })).status, 200);
    assert.equal((await t.request("/metrics")).status, 401);
    // The dashboard's cookie stands in for the header on reads (EventSource cannot send one)…
    const cookie = { cookie: `headroom_token=${token}` };
    assert.equal((await t.request("/api/v1/hardware/vram", { headers: cookie })).status, 200);
    assert.equal(
      (await t.request("/api/v1/hardware/vram", { headers: { cookie: "headroom_token=wrong" } }))
        .status,
      401,
    );
    // …but never on a mutating request: a cross-site form cannot ride on it.
    assert.equal(
      (await t.request("/api/v1/models/ocr-det/unload", { method: "POST", headers: cookie }))
        .status,
      401,
    );
  }
  await using t = await startOnFakeGpu({ token, tokenForInfer: true, gpu: "cpu" });
  assert.equal((await t.request("/api/v1/hardware/vram")).status, 200, "reads stay open");
  const infer = await t.request("/api/v1/pipelines/ocr-det/infer", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: "{}",
  });
  assert.equal(infer.status, 401);
  const ocr = await t.request("/api/v1/ocr", {
    method: "POST",
    body: "x",
    headers: { "content-type": "image/png" },
  });
  assert.equal(ocr.status, 401);
});

Deno.test("Queue limit - past HEADROOM_QUEUE_LIMIT a pipeline answers 429 with Retry-After", async () => {
  const dir = tempDirSync("headroom-queue-");
  Deno.writeTextFileSync(
    `${dir}/models.json`,
    JSON.stringify({
      models: [{
        id: "sum",
        source: "synthetic:64KiB",
        plugin: new URL("./fixtures/double_sum_plugin.ts", import.meta.url).pathname,
      }],
    }),
  );
  await using t = await startOnFakeGpu({
    gpu: "cpu",
    queueLimit: 1,
    modelsFile: `${dir}/models.json`,
  });
  const post = (payload: unknown) =>
    t.request("/api/v1/pipelines/sum/infer", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ payload }),
    });
  const hanging = post({ hang: true });
  while (
    t.service.services.scheduler.status().pipelines.find((p) => p.id === "sum")?.activeCount !== 1
  ) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const refused = await post({ values: [1] });
  assert.equal(refused.status, 429);
  assert.equal(refused.headers.get("retry-after"), "1");
  const body = await refused.json();
  assert.equal(body.error.code, "queue_full");
  assert.match(body.error.message, /limit 1/);
  // The hanging request is inside the worker once the pipeline is loaded.
  while (t.service.services.scheduler.model("sum").state !== "cpu") {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  await new Promise((resolve) => setTimeout(resolve, 50));
  t.service.host.replace("sum", "test over");
  assert.equal((await hanging).status, 503);
});

/** A models file with the test plugin model "sum" and a plain "bystander", removed on dispose. */
function sumModels(): { path: string } & Disposable {
  const dir = Deno.makeTempDirSync({ prefix: "headroom-limits-" });
  Deno.writeTextFileSync(
    `${dir}/models.json`,
    JSON.stringify({
      models: [
        {
          id: "sum",
          source: "synthetic:64KiB",
          plugin: new URL("./fixtures/double_sum_plugin.ts", import.meta.url).pathname,
        },
        { id: "bystander", source: "synthetic:64KiB" },
      ],
    }),
  );
  return {
    path: `${dir}/models.json`,
    [Symbol.dispose]: () => Deno.removeSync(dir, { recursive: true }),
  };
}

Deno.test("HEADROOM_REQUEST_TIMEOUT - a request stuck past it answers 504, its worker is replaced, the bystander is untouched", async () => {
  using models = sumModels();
  await using t = await startOnFakeGpu({
    gpu: "cpu",
    requestTimeoutMs: 1500,
    modelsFile: models.path,
  });
  const post = (id: string, body: unknown) =>
    t.request(`/api/v1/pipelines/${id}/infer`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  const bystander = await t.service.services.scheduler.load("bystander", "cpu");
  const width = bystander.inputs[0].dims[1] as number;
  const started = performance.now();
  const stuck = await post("sum", { payload: { hang: true } });
  assert.equal(stuck.status, 504, await stuck.clone().text());
  assert.ok(performance.now() - started < 10_000);
  const body = await stuck.json();
  assert.equal(body.error.code, "timeout");
  assert.match(body.error.message, /HEADROOM_REQUEST_TIMEOUT/);
  const model = t.service.services.scheduler.model("sum");
  assert.equal(model.state, "failed");
  assert.match(model.error ?? "", /stuck past the request timeout/);
  assert.equal(t.service.services.scheduler.model("bystander").state, "cpu");
  const tensors = { input: { type: "float32", dims: [1, width], data: new Array(width).fill(1) } };
  assert.equal((await post("bystander", { inputs: tensors })).status, 200);
  // The next request on "sum" starts a fresh worker.
  const again = await post("sum", { payload: { values: new Array(width).fill(0.5) } });
  assert.equal(again.status, 200, await again.clone().text());
});

Deno.test("cancellation - a client that disconnects while its request waits leaves the queue", async () => {
  using models = sumModels();
  await using t = await startOnFakeGpu({ gpu: "cpu", modelsFile: models.path });
  const { scheduler } = t.service.services;
  const post = (payload: unknown, signal?: AbortSignal) =>
    t.request("/api/v1/pipelines/sum/infer", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ payload }),
      signal,
    });
  const hanging = post({ hang: true });
  while (scheduler.status().pipelines.find((p) => p.id === "sum")?.activeCount !== 1) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const client = new AbortController();
  const queued = post({ values: [1] }, client.signal).catch((error) => error);
  const active = () => scheduler.status().pipelines.find((p) => p.id === "sum")?.activeCount;
  for (let i = 0; i < 200 && active() !== 2; i++) {
    await new Promise((resolve) => setTimeout(resolve, 10)); // until the second request is queued
  }
  assert.equal(active(), 2);
  client.abort();
  await queued;
  let count = 2;
  for (let i = 0; i < 100 && count !== 1; i++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
    count = scheduler.status().pipelines.find((p) => p.id === "sum")!.activeCount;
  }
  assert.equal(count, 1, "the request of the client that left no longer holds the queue");
  // The hanging request is inside the worker once the pipeline is loaded.
  while (scheduler.model("sum").state !== "cpu") {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  await new Promise((resolve) => setTimeout(resolve, 50));
  t.service.host.replace("sum", "test over");
  assert.equal((await hanging).status, 503);
});
