// The pipelines API end to end, with real workers and real models: PaddleOCR through
// /api/v1/ocr and Silero VAD through infer on the CPU (wasm), a generated model on the
// software WebGPU adapter, a worker killed mid-request, and bad input of every kind.
import assert from "node:assert/strict";
import { startService } from "../server/service.ts";
import type { ModelRow, VramReport } from "../core/types.ts";
import { testConfig } from "./_service.ts";
import { readWav } from "./_wav.ts";
import { requireWebGpu } from "./_requires.ts";
import { tempDirSync } from "./_temp.ts";

// Skipped here without an adapter; a failure under CI.
const webgpu = await requireWebGpu();

const FIXTURES = new URL("./fixtures/", import.meta.url);
const fixture = (name: string) => new URL(name, FIXTURES).pathname;

/** A models file beside a temp data dir; returns its path. */
function modelsFile(models: unknown[]): string {
  const dir = tempDirSync("headroom-models-");
  const path = `${dir}/models.json`;
  Deno.writeTextFileSync(path, JSON.stringify({ models }));
  return path;
}

const json = (body: unknown): RequestInit => ({
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify(body),
});

Deno.test("POST /api/v1/ocr - reads the fixture's printed text through det → cls → rec", async () => {
  await using service = await startService(testConfig({ gpu: "cpu" }));
  const png = Deno.readFileSync(fixture("ocr_hello.png"));
  const raw = await service.app.request("/api/v1/ocr", {
    method: "POST",
    headers: { "content-type": "image/png" },
    body: png,
  });
  assert.equal(raw.status, 200, await raw.clone().text());
  const result = await raw.json();
  assert.deepEqual(result.lines.map((l: { text: string }) => l.text), [
    "HELLO WORLD 2026",
    "Headroom keeps VRAM",
  ]);
  for (const line of result.lines) {
    assert.ok(line.score > 0.8, `score ${line.score}`);
    assert.ok(line.box.width > 0 && line.box.height > 0);
  }

  const form = new FormData();
  form.set("image", new File([png], "hello.png", { type: "image/png" }));
  const multipart = await service.app.request("/api/v1/ocr", { method: "POST", body: form });
  assert.equal(multipart.status, 200);
  assert.equal((await multipart.json()).text, "HELLO WORLD 2026\nHeadroom keeps VRAM");

  const vram: VramReport = await (await service.app.request("/api/v1/hardware/vram")).json();
  for (const id of ["ocr-det", "ocr-cls", "ocr-rec"]) {
    const pipeline = vram.models!.find((p) => p.id === id)!;
    assert.equal(pipeline.state, "cpu", id);
    assert.equal(pipeline.placement, "cpu", id);
  }
  const models: ModelRow[] = (await (await service.app.request("/api/v1/models")).json()).models;
  const det = models.find((m) => m.id === "ocr-det")!;
  assert.equal(det.display, "loaded");
  assert.equal(det.lastTransition?.kind, "load:cpu");
  assert.ok(det.lastTransition!.ms > 0);
  assert.deepEqual(det.inputs[0].name, "x");
  assert.equal(models.find((m) => m.id === "silero-vad")!.display, "never");
});

Deno.test("POST /api/v1/ocr - bad uploads get a 4xx that names the problem", async () => {
  await using service = await startService(testConfig({ gpu: "cpu" }));
  const post = (body: BodyInit, type?: string) =>
    service.app.request("/api/v1/ocr", {
      method: "POST",
      body,
      headers: type ? { "content-type": type } : {},
    });
  const notImage = await post("hello, I am text", "image/png");
  assert.equal(notImage.status, 400);
  assert.match((await notImage.json()).error.message, /neither a PNG nor a JPEG/);
  const wrongType = await post("{}", "application/json");
  assert.equal(wrongType.status, 415);
  assert.match((await wrongType.json()).error.message, /image\/png, image\/jpeg, or multipart/);
  const noField = new FormData();
  noField.set("picture", "x");
  const missing = await post(noField);
  assert.equal(missing.status, 400);
  assert.match((await missing.json()).error.message, /field "image"/);
  const huge = new Uint8Array(21 * 2 ** 20);
  huge.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const tooBig = await post(huge, "image/png");
  assert.equal(tooBig.status, 413);
  assert.equal((await tooBig.json()).error.code, "too_large");
  const truncated = Deno.readFileSync(fixture("ocr_hello.png")).slice(0, 200);
  const broken = await post(truncated, "image/png");
  assert.equal(broken.status, 400);
  assert.ok((await broken.json()).error.message.length > 0);
});

Deno.test("POST /api/v1/pipelines/silero-vad/infer - speech probabilities in [0, 1], higher in speech", async () => {
  await using service = await startService(testConfig({ gpu: "cpu" }));
  const samples = Array.from(readWav(fixture("vad_speech.wav")));
  const response = await service.app.request(
    "/api/v1/pipelines/silero-vad/infer",
    json({ payload: { samples } }),
  );
  assert.equal(response.status, 200, await response.clone().text());
  const body = await response.json();
  assert.equal(body.device, "cpu");
  const probabilities: number[] = body.output.probabilities;
  assert.equal(probabilities.length, Math.ceil(samples.length / 512));
  assert.ok(probabilities.every((p) => p >= 0 && p <= 1));
  const silence = probabilities.slice(0, 20);
  const speech = probabilities.slice(30, 70);
  assert.ok(Math.max(...silence) < 0.3, `silence ${Math.max(...silence)}`);
  assert.ok(Math.max(...speech) > 0.8, `speech ${Math.max(...speech)}`);
  assert.ok(body.output.speechSegments.length >= 1);
  const badRate = await service.app.request(
    "/api/v1/pipelines/silero-vad/infer",
    json({ payload: { samples: [0, 0], sampleRate: 8000 } }),
  );
  assert.equal(badRate.status, 400);
  assert.match((await badRate.json()).error.message, /16 kHz/);
});

Deno.test("POST /api/v1/pipelines/silero-vad/infer - the state it answers is plain JSON and goes back as it came: a stream in two calls matches one call", async () => {
  await using service = await startService(testConfig({ gpu: "cpu" }));
  const samples = Array.from(readWav(fixture("vad_speech.wav")));
  const infer = async (payload: unknown) => {
    const response = await service.app.request(
      "/api/v1/pipelines/silero-vad/infer",
      json({ payload }),
    );
    const body = await response.json();
    assert.equal(response.status, 200, JSON.stringify(body).slice(0, 300));
    return body.output;
  };
  const whole = await infer({ samples });
  const half = 10_000; // not a whole number of frames: some samples wait in the state
  const first = await infer({ samples: samples.slice(0, half), stream: true });
  for (const key of ["rnn", "context", "pending"]) {
    assert.ok(Array.isArray(first.state[key]), `state.${key} is a JSON array`);
  }
  assert.equal(first.state.rnn.length, 256);
  assert.equal(first.state.pending.length, half % 512);
  const second = await infer({ samples: samples.slice(half), state: first.state });
  const streamed = [...first.probabilities, ...second.probabilities];
  assert.equal(streamed.length, whole.probabilities.length);
  streamed.forEach((p: number, i: number) =>
    assert.ok(Math.abs(p - whole.probabilities[i]) < 1e-5, `frame ${i}`)
  );
  const broken = await service.app.request(
    "/api/v1/pipelines/silero-vad/infer",
    json({ payload: { samples: [0], state: { ...first.state, rnn: [1, 2] } } }),
  );
  assert.equal(broken.status, 400);
  assert.match((await broken.json()).error.message, /"state" is not a state this plugin returned/);
});

Deno.test("POST /api/v1/pipelines/{id}/infer - zero-size tensors answer 400 bad_tensor naming the input and the dimension", async () => {
  await using service = await startService(testConfig({ gpu: "cpu" }));
  for (
    const [id, dims, dimension] of [
      ["ocr-cls", [1, 3, 0, 192], 2],
      ["ocr-det", [0, 3, 32, 32], 0],
    ] as const
  ) {
    const response = await service.app.request(
      `/api/v1/pipelines/${id}/infer`,
      json({ inputs: { x: { type: "float32", dims, data: [] } } }),
    );
    const body = await response.json();
    assert.equal(response.status, 400, `${id}: ${JSON.stringify(body)}`);
    assert.equal(body.error.code, "bad_tensor");
    assert.match(
      body.error.message,
      new RegExp(
        `^Pipeline "${id}": Input "x" has dims \\[${
          dims.join(", ")
        }\\]: dimension ${dimension} is 0`,
      ),
    );
  }
  // The worker is fine afterwards: a tensor of the declared shape runs.
  const ok = await service.app.request(
    "/api/v1/pipelines/ocr-cls/infer",
    json({
      inputs: {
        x: { type: "float32", dims: [1, 3, 48, 192], data: new Array(3 * 48 * 192).fill(0) },
      },
    }),
  );
  assert.equal(ok.status, 200, await ok.clone().text());
});

Deno.test("POST /api/v1/pipelines/{id}/infer - tensors in, tensors out; bad tensors name themselves", async () => {
  await using service = await startService(testConfig({
    gpu: "cpu",
    modelsFile: modelsFile([{ id: "tiny", source: "synthetic:64KiB" }]),
  }));
  const request = (body: unknown, id = "tiny") =>
    service.app.request(`/api/v1/pipelines/${id}/infer`, json(body));
  const model: ModelRow = await (await service.app.request("/api/v1/models/tiny")).json();
  assert.equal(model.display, "never");
  const loaded: ModelRow =
    await (await service.app.request("/api/v1/models/tiny/load", json({ device: "cpu" }))).json();
  const width = loaded.inputs[0].dims[1] as number;
  assert.ok(width > 8);
  const ok = await request({
    inputs: { input: { type: "float32", dims: [2, width], data: new Array(2 * width).fill(0.5) } },
  });
  assert.equal(ok.status, 200, await ok.clone().text());
  const body = await ok.json();
  assert.deepEqual(body.outputs.output.dims, [2, width]);
  assert.ok(body.outputs.output.data.every((v: number) => Number.isFinite(v)));
  assert.equal(body.device, "cpu");

  const cases: Array<[unknown, number, RegExp]> = [
    [
      { inputs: { input: { type: "float32", dims: [1, 7], data: new Array(7).fill(0) } } },
      400,
      new RegExp(`"input" has dims \\[1, 7\\]: expected \\[N, ${width}\\]`),
    ],
    [
      { inputs: { input: { type: "int32", dims: [1, width], data: new Array(width).fill(0) } } },
      400,
      /"input" has type int32: expected float32/,
    ],
    [
      { inputs: { wrong: { type: "float32", dims: [1, width], data: new Array(width).fill(0) } } },
      400,
      /Unknown input "wrong"/,
    ],
    [
      { inputs: { input: { type: "float32", dims: [1, 3], data: [1, 2] } } },
      400,
      /dims \[1, 3\] hold 3 elements but data has 2/,
    ],
    [
      { inputs: { input: { type: "complex", dims: [1], data: [1] } } },
      400,
      /field "inputs.input.type"/,
    ],
    [{ inputs: {} }, 400, /must name at least one input/],
    [{ payload: {} }, 400, /has no plugin/],
    [{ something: 1 }, 400, /unrecognized key/i],
  ];
  for (const [bad, status, message] of cases) {
    const response = await request(bad);
    assert.equal(response.status, status, JSON.stringify(bad));
    assert.match((await response.json()).error.message, message, JSON.stringify(bad));
  }
  const badJson = await service.app.request("/api/v1/pipelines/tiny/infer", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: "{not json",
  });
  assert.equal(badJson.status, 400);
  assert.equal((await badJson.json()).error.code, "bad_json");
  const unknown = await request({ inputs: {} }, "ocr-dett");
  assert.equal(unknown.status, 404);
  assert.match(
    (await unknown.json()).error.message,
    /Unknown model "ocr-dett": expected one of tiny/,
  );
  const traversal = await service.app.request(
    "/api/v1/pipelines/..%2F..%2Fetc%2Fpasswd/infer",
    json({ inputs: {} }),
  );
  assert.equal(traversal.status, 404);
});

Deno.test("PipelineManager - a worker killed mid-request gives 503, the next request gets a fresh worker", async () => {
  await using service = await startService(testConfig({
    gpu: "cpu",
    modelsFile: modelsFile([{
      id: "sum",
      source: "synthetic:64KiB",
      plugin: fixture("double_sum_plugin.ts"),
    }]),
  }));
  const infer = (payload: unknown) =>
    service.app.request("/api/v1/pipelines/sum/infer", json({ payload }));
  const width = (await service.services.scheduler.load("sum", "cpu")).inputs[0].dims[1] as number;
  const values = Array.from({ length: width }, (_, i) => i / width);
  const first = await infer({ values });
  assert.equal(first.status, 200, await first.clone().text());
  const hanging = infer({ hang: true });
  // Wait until the hanging request is inside the worker, then kill the worker.
  while (service.services.scheduler.model("sum").state !== "cpu") {
    await new Promise((r) => setTimeout(r, 10));
  }
  await new Promise((r) => setTimeout(r, 50));
  service.host.replace("sum", "killed by the test");
  const killed = await hanging;
  assert.equal(killed.status, 503);
  const error = (await killed.json()).error;
  assert.equal(error.code, "worker_died");
  assert.match(error.message, /killed by the test/);
  assert.match(error.message, /next request starts a fresh worker/);
  assert.equal(service.services.scheduler.model("sum").state, "failed");
  const crashed = await infer({ crash: true });
  assert.equal(crashed.status, 503, "a worker that crashes by itself is noticed too");
  const again = await infer({ values });
  assert.equal(again.status, 200);
  assert.equal(service.services.scheduler.model("sum").state, "cpu");
  const events = service.services.events.recent(50).filter((e) => e.kind === "failure");
  assert.equal(events.length, 2);
});

Deno.test({
  name:
    "webgpu (software adapter) - load on GPU tracks bytes, offload frees them, rehydrate, unload",
  ignore: !webgpu,
  fn: async () => {
    await using service = await startService(testConfig({
      gpu: "software",
      vramBudget: { kind: "bytes", bytes: 256 * 2 ** 20 },
      headroomBytes: 0,
      modelsFile: modelsFile([{ id: "tiny-gpu", source: "synthetic:64KiB" }]),
    }));
    const { app } = service;
    const vram = async (): Promise<VramReport> =>
      await (await app.request("/api/v1/hardware/vram")).json();
    assert.equal((await vram()).source, "webgpu", "the service found no WebGPU adapter");
    const post = (path: string, body?: unknown) =>
      app.request(path, body === undefined ? { method: "POST" } : json(body));
    const loaded = await post("/api/v1/models/tiny-gpu/load", { device: "gpu" });
    assert.equal(loaded.status, 200, await loaded.clone().text());
    const onGpu: ModelRow = await loaded.json();
    assert.equal(onGpu.state, "gpu");
    assert.ok(onGpu.gpuBytes > 64 * 1024, `tracked ${onGpu.gpuBytes} bytes`);
    assert.equal(onGpu.gpuMismatch, null, "a MatMul chain agrees on GPU and CPU");
    const report = await vram();
    assert.equal(report.models!.find((p) => p.id === "tiny-gpu")!.gpuBytes, onGpu.gpuBytes);
    service.services.monitor.sample();
    assert.equal((await vram()).devices[0].activeBytes, onGpu.gpuBytes);
    const width = onGpu.inputs[0].dims[1] as number;
    const input = {
      input: {
        type: "float32",
        dims: [1, width],
        data: Array.from({ length: width }, (_, i) => Math.sin(i)),
      },
    };
    const gpuOut = await (await post("/api/v1/pipelines/tiny-gpu/infer", { inputs: input })).json();
    assert.equal(gpuOut.device, "gpu");

    const offloaded: ModelRow = await (await post("/api/v1/models/tiny-gpu/offload")).json();
    assert.equal(offloaded.state, "cpu");
    assert.equal(offloaded.gpuBytes, 0);
    assert.equal(offloaded.gpuBuffers, 0);
    assert.equal(offloaded.leak, null);
    // The host runs where the pipeline is (the scheduler would bring it back to the GPU on demand).
    const cpuRun = await service.host.run("tiny-gpu", {
      kind: "tensors",
      tensors: {
        input: {
          type: "float32",
          dims: input.input.dims,
          data: Float32Array.from(input.input.data),
        },
      },
    });
    assert.equal(cpuRun.device, "cpu");
    assert.equal(cpuRun.output.kind, "tensors");
    const a: number[] = gpuOut.outputs.output.data;
    const b = cpuRun.output.kind === "tensors"
      ? Array.from(cpuRun.output.tensors.output.data as Float32Array)
      : [];
    assert.ok(a.every((v, i) => Math.abs(v - b[i]) < 1e-4), "CPU outputs equal GPU outputs");

    const onDemand = await (await post("/api/v1/pipelines/tiny-gpu/infer", { inputs: input }))
      .json();
    assert.equal(
      onDemand.device,
      "gpu",
      "a request brings an offloaded pipeline back when there is room",
    );
    await post("/api/v1/models/tiny-gpu/offload");
    const back: ModelRow = await (await post("/api/v1/models/tiny-gpu/rehydrate")).json();
    assert.equal(back.state, "gpu");
    assert.ok(back.gpuBytes > 0);
    const gone: ModelRow = await (await post("/api/v1/models/tiny-gpu/unload")).json();
    assert.equal(gone.state, "unloaded");
    assert.equal(gone.display, "unloaded", "last-known figures stay after unload");
    assert.ok(gone.gpuProfile && gone.gpuProfile.gpuLoadBytes! > 0);
    assert.equal((await vram()).models![0].gpuBytes, 0);
  },
});

Deno.test("POST /api/v1/models/{id}/load {device: gpu} - no usable GPU: 409 no_gpu, nothing loaded", async () => {
  await using service = await startService(testConfig({ gpu: "cpu" }));
  const response = await service.app.request(
    "/api/v1/models/silero-vad/load",
    json({ device: "gpu" }),
  );
  const body = await response.json();
  assert.equal(response.status, 409, JSON.stringify(body));
  assert.equal(body.error.code, "no_gpu");
  assert.match(
    body.error.message,
    /^"silero-vad" is not on the GPU: no GPU is usable .*nothing was moved/,
  );
  assert.equal(service.services.scheduler.model("silero-vad").placement, "none");
});

Deno.test({
  name:
    "POST /api/v1/models/{id}/load {device: gpu} - Silero VAD fails the parity check on the software adapter: 409 no_gpu as without a GPU, and it serves on the CPU",
  ignore: !webgpu,
  fn: async () => {
    await using service = await startService(testConfig({
      gpu: "software",
      vramBudget: { kind: "bytes", bytes: 256 * 2 ** 20 },
      headroomBytes: 0,
    }));
    const response = await service.app.request(
      "/api/v1/models/silero-vad/load",
      json({ device: "gpu" }),
    );
    const body = await response.json();
    assert.equal(response.status, 409, JSON.stringify(body));
    assert.equal(body.error.code, "no_gpu");
    assert.match(
      body.error.message,
      /^"silero-vad" is not on the GPU: its GPU and CPU outputs disagree \(max error [\d.e+-]+ > 0\.001\), so the parity policy keeps it on the CPU; it is loaded on the CPU and serves requests there\./,
    );
    const row = service.services.scheduler.model("silero-vad");
    assert.equal(row.placement, "cpu");
    assert.ok(row.gpuMismatch, "the row carries the mismatch");
    const samples = Array.from(readWav(fixture("vad_speech.wav")));
    const run = await service.app.request(
      "/api/v1/pipelines/silero-vad/infer",
      json({ payload: { samples } }),
    );
    assert.equal(run.status, 200);
    assert.equal((await run.json()).device, "cpu");
  },
});
