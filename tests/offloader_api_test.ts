// The offloader's API end to end (issue 4), with a real server, real workers and small
// generated models on the software WebGPU adapter: model switching, profiles that
// survive a restart, the pre-flight check, live LRU eviction under a small budget with a
// pinned pipeline, chains, the streamed test load, the VAD WebSocket stream, and the
// token on every new mutating route.
import assert from "node:assert/strict";
import { type Service, startService } from "../server/service.ts";
import type { Config } from "../core/config.ts";
import type { HeadroomEvent, ModelRow, VramReport } from "../core/types.ts";
import { parseSyntheticSize, planSyntheticModel } from "../core/models/synthetic.ts";
import { testConfig } from "./_service.ts";
import { serveHeadroom } from "../server/serve_headroom.ts";
import { readWav } from "./_wav.ts";
import { requireWebGpu } from "./_requires.ts";
import { tempDirSync } from "./_temp.ts";

const FIXTURES = new URL("./fixtures/", import.meta.url);

/** A models file of generated models `{id: size}`; returns its path. */
function modelsFile(models: Record<string, string>): string {
  const dir = tempDirSync("headroom-models-");
  const path = `${dir}/models.json`;
  Deno.writeTextFileSync(
    path,
    JSON.stringify({
      models: Object.entries(models).map(([id, size]) => ({ id, source: `synthetic:${size}` })),
    }),
  );
  return path;
}

const json = (body: unknown, headers: Record<string, string> = {}): RequestInit => ({
  method: "POST",
  headers: { "content-type": "application/json", ...headers },
  body: JSON.stringify(body),
});

/** A request body for a generated model of `size`: one row of its width. */
function tensorsFor(size: string) {
  const { width } = planSyntheticModel(parseSyntheticSize(size));
  return {
    inputs: {
      input: {
        type: "float32",
        dims: [1, width],
        data: Array.from({ length: width }, (_, i) => Math.sin(i) / 2),
      },
    },
  };
}

/**
 * A software-WebGPU config with a byte budget (the adapter reports no memory) and a
 * headroom of a tenth of it (the headroom is used as given: the default 1.5 GiB would be
 * above these budgets, a start-up error).
 */
function softwareConfig(budgetBytes: number, overrides: Partial<Config> = {}): Config {
  return testConfig({
    gpu: "software",
    vramBudget: { kind: "bytes", bytes: budgetBytes },
    headroomBytes: Math.floor(budgetBytes / 10),
    ...overrides,
  });
}

/** Small client over `app.request`. */
function client(service: Service) {
  const { app } = service;
  return {
    get: async <T>(path: string): Promise<T> => {
      const response = await app.request(path);
      assert.equal(response.status, 200, `GET ${path}: ${await response.clone().text()}`);
      return await response.json();
    },
    post: (path: string, body?: unknown, headers: Record<string, string> = {}) =>
      Promise.resolve(
        app.request(path, body === undefined ? { method: "POST", headers } : json(body, headers)),
      ),
    vram: async (): Promise<VramReport> =>
      await (await app.request("/api/v1/hardware/vram")).json(),
    models: async (): Promise<ModelRow[]> =>
      (await (await app.request("/api/v1/models")).json()).models,
  };
}

/** The service runs on the WebGPU adapter the test process found (else the GPU path is not tested). */
function assertWebGpu(service: Service): void {
  assert.equal(
    service.services.monitor.sourceKind,
    "webgpu",
    "the service found no WebGPU adapter",
  );
}

// Skipped here without an adapter; a failure under CI (tests/_requires.ts).
const webgpu = await requireWebGpu();

// Tests that need no GPU, and tests of the GPU path (sanitizers on for both).
const workerTest = (name: string, fn: () => Promise<void>) => Deno.test({ name, fn });
const gpuTest = (name: string, fn: () => Promise<void>) => Deno.test({ name, ignore: !webgpu, fn });

gpuTest(
  "POST /v1/models/switch - loads one model alone, unloads the previous, names bad input",
  async () => {
    await using service = await startService(softwareConfig(64 * 2 ** 20, {
      modelsFile: modelsFile({ a: "64KiB", b: "64KiB" }),
    }));
    assertWebGpu(service);
    const api = client(service);
    const first = await api.post("/v1/models/switch", { model: "a" });
    assert.equal(first.status, 200, await first.clone().text());
    const a = await first.json();
    assert.deepEqual(Object.keys(a).sort(), [
      "already_loaded",
      "device",
      "engine",
      "load_ms",
      "model",
      "models",
      "ram_mb",
      "reason",
      "rss_mb",
      "status",
      "unloaded",
      "vram_mb",
    ]);
    assert.equal(a.already_loaded, false);
    assert.equal(a.reason, null);
    assert.equal(a.status, "success");
    assert.equal(a.model, "a");
    assert.equal(a.device, "gpu");
    assert.deepEqual(a.unloaded, []);
    assert.ok(a.vram_mb > 0, `vram_mb ${a.vram_mb}: a 64 KiB model's tracked buffers`);
    assert.equal(a.engine, "webgpu");
    assert.ok(a.ram_mb > 0, `ram_mb ${a.ram_mb}: the webgpu build's wasm memory, never negative`);
    assert.ok(a.rss_mb >= a.ram_mb, "the process's RSS is reported apart");
    assert.ok(Number.isInteger(a.load_ms) && a.load_ms > 0);

    const second = await api.post("/v1/models/switch", { model: "b" });
    assert.equal(second.status, 200, await second.clone().text());
    const b = await second.json();
    assert.equal(b.model, "b");
    assert.equal(b.device, "gpu");
    assert.deepEqual(b.unloaded, ["a"]);
    const models = await api.models();
    assert.equal(models.find((m) => m.id === "a")!.state, "unloaded");
    assert.equal(models.find((m) => m.id === "b")!.state, "gpu");

    const unknown = await api.post("/v1/models/switch", { model: "nope" });
    assert.equal(unknown.status, 404);
    assert.match((await unknown.json()).error.message, /Unknown model "nope"/);
    assert.equal(
      (await api.models()).find((m) => m.id === "b")!.state,
      "gpu",
      "404 unloads nothing",
    );
    for (const bad of [{}, { model: "" }, { model: 3 }]) {
      const response = await api.post("/v1/models/switch", bad);
      assert.equal(response.status, 400, JSON.stringify(bad));
      assert.match((await response.json()).error.message, /field "model"/, JSON.stringify(bad));
    }
    const notJson = await service.app.request("/v1/models/switch", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{model",
    });
    assert.equal(notJson.status, 400);
    assert.equal((await notJson.json()).error.code, "bad_json");
  },
);

gpuTest(
  "KV profiles - survive a restart: unloaded models keep last-known figures, never-loaded say so",
  async () => {
    const dataDir = tempDirSync("headroom-restart-");
    const config = softwareConfig(64 * 2 ** 20, {
      dataDir,
      modelsFile: modelsFile({ a: "64KiB", b: "64KiB", c: "64KiB" }),
    });
    {
      await using service = await startService(config);
      assertWebGpu(service);
      const api = client(service);
      const onGpu = await api.post("/api/v1/models/a/load", { device: "gpu" });
      assert.equal(onGpu.status, 200, await onGpu.clone().text());
      assert.equal((await onGpu.json()).state, "gpu");
      assert.equal((await api.post("/api/v1/models/a/offload")).status, 200);
      const onCpu = await api.post("/api/v1/models/b/load", { device: "cpu" });
      assert.equal(onCpu.status, 200, await onCpu.clone().text());
    }
    await using again = await startService(config);
    const models = await client(again).models();
    const [a, b, c] = ["a", "b", "c"].map((id) => models.find((m) => m.id === id)!);
    assert.equal(a.state, "unloaded");
    assert.equal(a.display, "unloaded");
    assert.ok(a.gpuProfile, "a has its GPU profile after the restart");
    assert.ok(a.gpuProfile.gpuLoadBytes! > 60_000, `gpuLoadBytes ${a.gpuProfile.gpuLoadBytes}`);
    assert.ok(a.gpuProfile.gpuPeakBytes! >= a.gpuProfile.gpuLoadBytes!);
    assert.ok(a.gpuProfile.loadMs! > 0);
    assert.ok(a.gpuProfile.offloadMs! > 0, "the offload's time is in the GPU profile");
    assert.equal(b.display, "unloaded");
    assert.equal(b.gpuProfile, null);
    assert.ok(b.cpuProfile && b.cpuProfile.loadMs! > 0);
    assert.equal(typeof b.cpuProfile.rssDeltaBytes, "number");
    assert.equal(c.display, "never");
    assert.equal(c.gpuProfile, null);
    assert.equal(c.cpuProfile, null);
  },
);

gpuTest(
  "POST /api/v1/hardware/vram/check and /api/v1/chains - fits, fits after evicting, does not fit",
  async () => {
    const MiB = 2 ** 20;
    await using service = await startService(softwareConfig(4 * MiB, {
      headroomBytes: 0,
      modelsFile: modelsFile({ a: "1MiB", b: "1MiB", c: "1536KiB", huge: "8MiB" }),
    }));
    assertWebGpu(service);
    const api = client(service);
    const check = async (pipelines: string[]) => {
      const response = await api.post("/api/v1/hardware/vram/check", { pipelines });
      assert.equal(response.status, 200, await response.clone().text());
      return await response.json();
    };
    const view = async () =>
      (await api.models()).map((m) => [m.id, m.state, m.placement, m.gpuBytes, m.pinned]);

    const empty = await check(["a", "b"]);
    assert.equal(empty.fits, true);
    assert.match(empty.message, /a → b fits/);
    assert.deepEqual(empty.wouldEvict, []);
    assert.equal(empty.neededBytes, 2 * Math.ceil(1.5 * MiB), "file × 1.5 before any measurement");
    assert.equal(empty.availableBytes, 4 * MiB);
    assert.deepEqual(empty.estimates.map((e: { basis: string }) => e.basis), ["file", "file"]);

    // A chain that fits: 201, its members on the GPU.
    const created = await api.post("/api/v1/chains", { pipelines: ["a", "b"] });
    assert.equal(created.status, 201, await created.clone().text());
    const chain = await created.json();
    assert.equal(chain.id, "a+b");
    assert.deepEqual(chain.pipelines, ["a", "b"]);
    assert.equal(chain.check.fits, true);
    assert.deepEqual(chain.placements, { a: "gpu", b: "gpu" });
    const listed = await api.get<{ chains: Array<{ id: string }> }>("/api/v1/chains");
    assert.deepEqual(listed.chains.map((c) => c.id), ["a+b"]);
    // b used after a: a is the least recently used.
    assert.equal((await api.post("/api/v1/pipelines/a/infer", tensorsFor("1MiB"))).status, 200);
    assert.equal((await api.post("/api/v1/pipelines/b/infer", tensorsFor("1MiB"))).status, 200);

    const before = await view();
    const report = await api.vram();
    const tracked = report.models!.reduce((sum, p) => sum + p.gpuBytes, 0);
    const loaded = await check(["a"]);
    assert.equal(loaded.fits, true);
    assert.equal(loaded.neededBytes, 0);
    assert.match(loaded.message, /already on the GPU/);

    const tight = await check(["c"]);
    assert.equal(tight.fits, true, tight.message);
    assert.equal(tight.neededBytes, Math.ceil(1.5 * 1536 * 1024));
    assert.equal(tight.availableBytes, 4 * MiB - tracked);
    assert.ok(tight.neededBytes > tight.availableBytes, "c needs more than is free now");
    assert.deepEqual(
      tight.wouldEvict.map((e: { id: string }) => e.id),
      ["a"],
      "LRU first, only one",
    );
    assert.equal(tight.wouldEvict[0].bytes, report.models!.find((p) => p.id === "a")!.gpuBytes);
    assert.match(tight.message, /fits after moving a to the CPU/);

    const no = await check(["huge"]);
    assert.equal(no.fits, false);
    assert.deepEqual(no.wouldEvict, []);
    assert.equal(no.neededBytes, Math.ceil(1.5 * 8 * MiB));
    assert.match(no.message, /huge does not fit: needs 12(\.0)? MiB/);
    assert.match(no.message, /still short by/);
    assert.deepEqual(await view(), before, "a check changes nothing");

    // A chain that does not fit: 409 with the check's message, nothing moved or saved.
    const refused = await api.post("/api/v1/chains", { id: "big", pipelines: ["huge"] });
    assert.equal(refused.status, 409);
    const body = await refused.json();
    assert.equal(body.error.message, no.message);
    assert.equal(body.check.fits, false);
    assert.deepEqual(await view(), before, "a refused chain changes nothing");
    const after = await api.get<{ chains: Array<{ id: string }> }>("/api/v1/chains");
    assert.deepEqual(after.chains.map((c) => c.id), ["a+b"]);

    for (
      const [bad, pattern] of [
        [{}, /field "pipelines"/],
        [{ pipelines: [] }, /field "pipelines": must name at least one pipeline/],
        [{ pipelines: ["a", "a"] }, /lists a pipeline twice/],
        [{ pipelines: ["a"], id: "Bad Id" }, /field "id"/],
      ] as const
    ) {
      const response = await api.post("/api/v1/chains", bad);
      assert.equal(response.status, 400, JSON.stringify(bad));
      assert.match((await response.json()).error.message, pattern);
    }
    const unknown = await api.post("/api/v1/hardware/vram/check", { pipelines: ["a", "zzz"] });
    assert.equal(unknown.status, 404);
    assert.match((await unknown.json()).error.message, /Unknown model "zzz"/);
  },
);

gpuTest(
  "Live eviction - a small budget holds 2 of 4 models: LRU evictions with reasons, pinned stays",
  async () => {
    const ids = ["m1", "m2", "m3", "m4"];
    const size = "1MiB";
    const dataDir = tempDirSync("headroom-evict-");
    const models = modelsFile(Object.fromEntries(ids.map((id) => [id, size])));
    const input = tensorsFor(size);

    // 1. Measure: each model once on a roomy budget (a run, then unload, saves its peak).
    let peak = 0;
    {
      await using roomy = await startService(softwareConfig(256 * 2 ** 20, {
        dataDir,
        modelsFile: models,
        headroomBytes: 0,
      }));
      assertWebGpu(roomy);
      const api = client(roomy);
      for (const id of ids) {
        const response = await api.post(`/api/v1/pipelines/${id}/infer`, input);
        assert.equal(response.status, 200, await response.clone().text());
        assert.equal((await response.json()).device, "gpu");
        assert.equal((await api.post(`/api/v1/models/${id}/unload`)).status, 200);
      }
      for (const model of await api.models()) {
        assert.ok(model.gpuProfile?.gpuPeakBytes, `${model.id} measured`);
        peak = Math.max(peak, model.gpuProfile.gpuPeakBytes);
      }
    }

    // 2. A budget for two, with a headroom of a tenth of it.
    const budget = Math.ceil(2.75 * peak);
    const headroom = Math.floor(budget / 10);
    assert.ok(2 * peak + headroom <= budget && 3 * peak + headroom > budget);
    await using service = await startService(softwareConfig(budget, {
      dataDir,
      modelsFile: models,
      headroomBytes: headroom,
    }));
    const api = client(service);
    let lastSeq = 0;
    const lastUse = new Map<string, number>();
    let clock = 0;
    const onGpu = (report: VramReport) =>
      report.models!.filter((p) => p.placement === "gpu").map((p) => p.id).sort();

    /** Requests `id`, then checks the invariant and answers the new eviction events. */
    const request = async (id: string): Promise<HeadroomEvent[]> => {
      const response = await api.post(`/api/v1/pipelines/${id}/infer`, input);
      assert.equal(response.status, 200, await response.clone().text());
      assert.equal((await response.json()).device, "gpu", `${id} is served on the GPU`);
      lastUse.set(id, ++clock);
      const report = await api.vram();
      const tracked = report.models!.reduce((sum, p) => sum + p.gpuBytes, 0);
      assert.equal(report.scheduler!.budgetBytes, budget);
      assert.equal(report.scheduler!.headroomBytes, headroom);
      assert.ok(
        tracked + headroom <= budget,
        `after ${id}: ${tracked} tracked + ${headroom} headroom > ${budget}`,
      );
      assert.ok(onGpu(report).includes(id));
      assert.ok(onGpu(report).length <= 2, `on the GPU: ${onGpu(report)}`);
      const events = (report.events ?? []).filter((e) => e.seq > lastSeq).reverse();
      lastSeq = Math.max(lastSeq, ...(report.events ?? []).map((e) => e.seq));
      return events.filter((e) => e.kind === "eviction");
    };

    const order = ["m1", "m2", "m3", "m4", "m1", "m3"];
    for (const id of order) {
      const gpuBefore = onGpu(await api.vram());
      const evictions = await request(id);
      if (gpuBefore.includes(id) || gpuBefore.length < 2) {
        assert.deepEqual(evictions, [], `${id}: no eviction needed`);
        continue;
      }
      // The least recently used of those on the GPU goes first, and only it.
      const lru = gpuBefore.sort((x, y) => lastUse.get(x)! - lastUse.get(y)!)[0];
      assert.equal(evictions.length, 1, JSON.stringify(evictions));
      assert.equal(evictions[0].pipeline, lru);
      assert.match(evictions[0].message, new RegExp(`^evicted ${lru} \\(idle \\d+ s, .+\\) `));
      assert.match(evictions[0].message, new RegExp(`to make room for ${id}$`));
    }
    const evictedSoFar = service.services.events.recent(1000).filter((e) => e.kind === "eviction");
    assert.equal(evictedSoFar.length, 4, "m3, m4, m1 and m3 each evicted one");

    // 3. Pin the most recently used: it is never evicted, whatever comes next.
    const pinned = "m3";
    const pin = await api.post(`/api/v1/models/${pinned}/pin`);
    assert.equal(pin.status, 200);
    assert.equal((await pin.json()).pinned, true);
    for (const id of ["m2", "m4", "m1", "m2"]) {
      const evictions = await request(id);
      assert.ok(evictions.every((e) => e.pipeline !== pinned), JSON.stringify(evictions));
      assert.equal(evictions.length, 1, `${id} took the unpinned slot`);
      assert.ok(onGpu(await api.vram()).includes(pinned), `${pinned} stays on the GPU`);
    }
    assert.equal(
      (await api.vram()).scheduler!.pipelines.find((p) => p.id === pinned)!.pinned,
      true,
    );
    const unpin = await api.post(`/api/v1/models/${pinned}/unpin`);
    assert.equal((await unpin.json()).pinned, false);
    const evictions = await request("m4");
    assert.deepEqual(evictions.map((e) => e.pipeline), [pinned], "unpinned, it is the LRU again");
  },
);

workerTest(
  "POST /api/v1/models/test-load - streams NDJSON per model; a second one meanwhile is 409",
  async () => {
    await using service = await startService(softwareConfig(64 * 2 ** 20, {
      modelsFile: modelsFile({ a: "64KiB", b: "128KiB" }),
    }));
    const api = client(service);
    const response = await api.post("/api/v1/models/test-load", {});
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type")!, /application\/x-ndjson/);
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    const lines: Array<Record<string, unknown>> = [];
    const next = async () => {
      while (!buffer.includes("\n")) {
        const { value, done } = await reader.read();
        if (done) return null;
        buffer += value;
      }
      const end = buffer.indexOf("\n");
      const line = JSON.parse(buffer.slice(0, end));
      buffer = buffer.slice(end + 1);
      lines.push(line);
      return line;
    };
    assert.deepEqual(await next(), { event: "started", model: "a", index: 0, total: 2 });
    const busy = await api.post("/api/v1/models/test-load", { models: ["b"] });
    assert.equal(busy.status, 409);
    assert.match((await busy.json()).error.message, /already running/);
    while ((await next()) !== null);
    assert.deepEqual(
      lines.map((l) => `${l.event}${l.model ? ` ${l.model}` : ""}`),
      ["started a", "measured a", "started b", "measured b", "done"],
    );
    const device = service.services.scheduler.defaultDevice;
    for (const line of lines.filter((l) => l.event === "measured")) {
      const m = line.measurement as Record<string, unknown>;
      assert.equal(m.model, line.model);
      assert.equal(m.device, device);
      assert.equal(m.placement, device);
      assert.equal(m.vramBasis, "tracked");
      assert.ok((m.ramBytes as number) > 0, `RAM ${m.ramBytes}: the session's, never ≤ 0`);
      assert.ok((m.ms as number) > 0);
      if (device === "gpu") {
        assert.ok((m.trackedBytes as number) > 64 * 1024);
        assert.equal(m.vramBytes, m.trackedBytes);
      }
    }
    const done = lines.at(-1)!;
    assert.equal(done.total, 2);
    assert.equal(done.failed, 0);
    for (const model of await api.models()) {
      assert.equal(model.state, "unloaded", `${model.id} unloaded after its measurement`);
      assert.equal(model.display, "unloaded");
    }
    // Free again: a second run works, and bad bodies are named.
    const again = await api.post("/api/v1/models/test-load", { models: ["b"], device: "cpu" });
    assert.equal(again.status, 200);
    const text = await again.text();
    assert.match(text, /"event":"measured".*"placement":"cpu"/);
    const bad = await api.post("/api/v1/models/test-load", { device: "tpu" });
    assert.equal(bad.status, 400);
    assert.match((await bad.json()).error.message, /field "device"/);
    const unknown = await api.post("/api/v1/models/test-load", { models: ["zzz"] });
    assert.equal(unknown.status, 404);
  },
);

workerTest(
  "WebSocket /api/v1/pipelines/silero-vad/stream - probabilities per chunk, active while open",
  async () => {
    await using service = await serveHeadroom({
      tempPrefix: "headroom-test-",
      config: { gpu: "cpu" },
    });
    const base = new URL(service.url).host;
    const activeCount = async () => {
      const report: VramReport = await (await fetch(`http://${base}/api/v1/hardware/vram`)).json();
      return report.scheduler!.pipelines.find((p) => p.id === "silero-vad")?.activeCount ?? 0;
    };
    try {
      const samples = readWav(new URL("vad_speech.wav", FIXTURES));
      const chunkSize = 3000;
      const chunks: Float32Array[] = [];
      for (let i = 0; i < samples.length; i += chunkSize) {
        chunks.push(samples.slice(i, i + chunkSize));
      }
      const socket = new WebSocket(`ws://${base}/api/v1/pipelines/silero-vad/stream`);
      socket.binaryType = "arraybuffer";
      const replies: Array<Record<string, unknown>> = [];
      let activeWhileOpen = -1;
      const closed = new Promise<CloseEvent>((resolve, reject) => {
        socket.onerror = () => reject(new Error("WebSocket error"));
        socket.onclose = resolve;
      });
      await new Promise<void>((resolve, reject) => {
        socket.onopen = () => resolve();
        socket.onerror = () => reject(new Error("WebSocket did not open"));
      });
      const firstReply = new Promise<void>((resolve) => {
        socket.onmessage = (event) => {
          replies.push(JSON.parse(event.data as string));
          resolve();
        };
      });
      socket.send(chunks[0].slice().buffer);
      await firstReply;
      activeWhileOpen = await activeCount();
      for (const chunk of chunks.slice(1)) socket.send(chunk.slice().buffer);
      socket.send(JSON.stringify({ end: true }));
      const close = await closed;
      assert.equal(close.code, 1000, close.reason);
      assert.ok(activeWhileOpen >= 1, `active count while streaming: ${activeWhileOpen}`);

      assert.equal(replies.length, chunks.length + 1, "one reply per chunk, and one for the end");
      for (const [i, reply] of replies.entries()) {
        assert.equal(reply.error, undefined, JSON.stringify(reply.error));
        assert.equal(reply.chunk, i);
        assert.equal(reply.device, "cpu");
        const probabilities = reply.probabilities as number[];
        assert.ok(Array.isArray(probabilities));
        assert.ok(probabilities.every((p) => p >= 0 && p <= 1), `chunk ${i}: ${probabilities}`);
      }
      const all = replies.flatMap((r) => r.probabilities as number[]);
      assert.ok(Math.max(...all) > 0.8, `max speech probability ${Math.max(...all)}`);
      const segments = replies.flatMap((r) => (r.speechSegments ?? []) as unknown[]);
      assert.ok(segments.length >= 1, "a speech segment was found");

      let idle = await activeCount();
      for (let i = 0; i < 50 && idle !== 0; i++) {
        await new Promise((r) => setTimeout(r, 20));
        idle = await activeCount();
      }
      assert.equal(idle, 0, "idle once the socket is closed");

      // A bad chunk is answered with an error, and the stream goes on.
      const bad = new WebSocket(`ws://${base}/api/v1/pipelines/silero-vad/stream`);
      const answer = new Promise<Record<string, unknown>>((resolve, reject) => {
        bad.onmessage = (event) => resolve(JSON.parse(event.data as string));
        bad.onerror = () => reject(new Error("WebSocket error"));
      });
      await new Promise((resolve) => (bad.onopen = resolve));
      bad.send(new Uint8Array(7));
      const error = (await answer).error as { code: string };
      assert.equal(error.code, "bad_chunk");
      const badClosed = new Promise((resolve) => (bad.onclose = resolve));
      bad.close();
      await badClosed;
    } finally {
      await service.close();
    }
  },
);

Deno.test("API token - every new mutating route answers 401 without it", async () => {
  const token = "offloader-api-token-0123456789";
  await using service = await startService(testConfig({
    gpu: "cpu",
    token,
    modelsFile: modelsFile({ a: "64KiB" }),
  }));
  const api = client(service);
  const routes: Array<[string, unknown]> = [
    ["/v1/models/switch", { model: "a" }],
    ["/api/v1/chains", { pipelines: ["a"] }],
    ["/api/v1/models/a/pin", undefined],
    ["/api/v1/models/a/unpin", undefined],
    ["/api/v1/models/test-load", {}],
  ];
  for (const [path, body] of routes) {
    const none = await api.post(path, body);
    assert.equal(none.status, 401, path);
    assert.equal((await none.json()).error.code, "unauthorized", path);
    const wrong = await api.post(path, body, { authorization: "Bearer wrong-token-0123456789" });
    assert.equal(wrong.status, 401, `${path} with a wrong token`);
    await wrong.body?.cancel();
  }
  assert.equal(service.services.scheduler.model("a").state, "unloaded", "nothing ran");
  const auth = { authorization: `Bearer ${token}` };
  const pinned = await api.post("/api/v1/models/a/pin", undefined, auth);
  assert.equal(pinned.status, 200);
  assert.equal((await pinned.json()).pinned, true);
  const unpinned = await api.post("/api/v1/models/a/unpin", undefined, auth);
  assert.equal((await unpinned.json()).pinned, false);
  // The pre-flight check changes nothing: it needs no token.
  const check = await api.post("/api/v1/hardware/vram/check", { pipelines: ["a"] });
  assert.equal(check.status, 200);
});
