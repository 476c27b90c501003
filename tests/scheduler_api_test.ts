/**
 * The scheduler through the HTTP API, on real workers: exclusive mode switches on an
 * ordinary inference request (the route only names its trigger), and a switch that
 * cannot fit in reject mode answers 507 and unloads nothing.
 */
import assert from "node:assert/strict";
import { parseSyntheticSize, planSyntheticModel } from "../core/models/synthetic.ts";
import { startOnFakeGpu } from "./_service.ts";
import { GiB } from "./fake_gpu.ts";

/** A models file with two generated models, removed on dispose. */
function modelsFile(): { path: string } & Disposable {
  const dir = Deno.makeTempDirSync({ prefix: "headroom-scheduler-api-" });
  Deno.writeTextFileSync(
    `${dir}/models.json`,
    JSON.stringify({
      models: [
        { id: "a", source: "synthetic:64KiB" },
        { id: "b", source: "synthetic:64KiB" },
      ],
    }),
  );
  return {
    path: `${dir}/models.json`,
    [Symbol.dispose]: () => Deno.removeSync(dir, { recursive: true }),
  };
}

const json = (body: unknown): RequestInit => ({
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify(body),
});

const { width } = planSyntheticModel(parseSyntheticSize("64KiB"));
const inputs = { input: { type: "float32", dims: [1, width], data: new Array(width).fill(0.25) } };

Deno.test("HEADROOM_MODE=exclusive - an inference request for a model that is not loaded switches to it (auto-switch, trigger infer)", async () => {
  using file = modelsFile();
  await using t = await startOnFakeGpu({ gpu: "cpu", mode: "exclusive", modelsFile: file.path });
  assert.equal((await t.request("/api/v1/pipelines/a/infer", json({ inputs }))).status, 200);
  const second = await t.request("/api/v1/pipelines/b/infer", json({ inputs }));
  assert.equal(second.status, 200, await second.clone().text());
  const { models } = await (await t.request("/api/v1/models")).json();
  assert.deepEqual(
    models.map((m: { id: string; state: string }) => `${m.id}=${m.state}`),
    ["a=unloaded", "b=cpu"],
  );
  const report = await (await t.request("/api/v1/hardware/vram")).json();
  assert.equal(report.scheduler!.mode, "exclusive");
  const switches = report.events.filter((e: { kind: string }) => e.kind === "auto-switch");
  assert.deepEqual(switches.map((e: { model: string; trigger: string }) => [e.model, e.trigger]), [
    ["b", "infer"],
    ["a", "infer"],
  ]);
  assert.equal(typeof switches[0].ramMb, "number");
});

Deno.test("POST /v1/models/switch - reject mode, no room: 507 naming the shortfall, and nothing unloaded", async () => {
  using file = modelsFile();
  await using t = await startOnFakeGpu(
    {
      onInsufficientVram: "reject",
      headroomBytes: 2 * GiB,
      modelsFile: file.path,
      sampleMs: 60_000,
    },
    (gpu) => gpu.setOtherUsed(0, 6.5 * GiB), // 1.5 GiB free, under the 2 GiB headroom
  );
  const loaded = await t.request("/api/v1/models/a/load", json({ device: "cpu" }));
  assert.equal(loaded.status, 200, await loaded.clone().text());
  const refused = await t.request("/v1/models/switch", json({ model: "b" }));
  assert.equal(refused.status, 507);
  const body = await refused.json();
  assert.equal(body.error.code, "oom");
  assert.match(
    body.error.message,
    /^Not enough GPU memory to switch: b needs .*Nothing was unloaded\./,
  );
  const { models } = await (await t.request("/api/v1/models")).json();
  assert.deepEqual(
    models.map((m: { id: string; state: string }) => `${m.id}=${m.state}`),
    ["a=cpu", "b=unloaded"],
  );
});

Deno.test("explicit actions - one a row's actions do not offer answers 409 not_offered naming the state, and changes nothing", async () => {
  using file = modelsFile();
  await using t = await startOnFakeGpu({ gpu: "cpu", modelsFile: file.path, sampleMs: 60_000 });
  const post = (path: string, body?: unknown) =>
    t.request(path, body === undefined ? { method: "POST" } : json(body));
  const loaded = await post("/api/v1/models/a/load", { device: "cpu" });
  assert.equal(loaded.status, 200, await loaded.clone().text());
  assert.deepEqual((await loaded.json()).actions, ["unload", "pin"]); // the GPU runs on the CPU here
  const refusals: Array<[string, unknown, RegExp]> = [
    // issue 21 item 17: offload of a model on the CPU answered 200 and did nothing.
    [
      "/api/v1/models/a/offload",
      undefined,
      /^Model "a" is on the CPU \(state "cpu"\): "offload" is not offered now; it offers unload, pin$/,
    ],
    ["/api/v1/models/a/load", { device: "cpu" }, /^Model "a" is on the CPU .*"load-cpu" is not/],
    [
      "/api/v1/models/b/unload",
      undefined,
      /^Model "b" is not loaded \(state "unloaded"\): "unload"/,
    ],
    ["/api/v1/models/b/unpin", undefined, /^Model "b" is not pinned: "unpin" is not offered/],
  ];
  for (const [path, body, message] of refusals) {
    const answer = await post(path, body);
    const error = (await answer.json()).error;
    assert.equal(answer.status, 409, `${path}: ${JSON.stringify(error)}`);
    assert.equal(error.code, "not_offered", path);
    assert.match(error.message, message, path);
  }
  assert.equal((await post("/api/v1/models/a/pin")).status, 200);
  const again = await post("/api/v1/models/a/pin");
  assert.equal(again.status, 409);
  assert.match((await again.json()).error.message, /^Model "a" is pinned already: "pin"/);
  const { models } = await (await t.request("/api/v1/models")).json();
  assert.deepEqual(
    models.map((m: { id: string; state: string; pinned: boolean }) =>
      `${m.id}=${m.state}${m.pinned ? " pinned" : ""}`
    ),
    ["a=cpu pinned", "b=unloaded"],
  );
});
