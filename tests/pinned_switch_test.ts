// Token means token (issue 20 finding 14): in exclusive mode a request without the token
// never unloads the token holder's pinned model (the auto-switch is refused with the reason),
// and a switch names the pinned models it would unload and needs `force` to do it.
import assert from "node:assert/strict";
import { startService } from "../server/service.ts";
import { testConfig } from "./_service.ts";
import { writeModelsFile } from "./fixtures/artifact.ts";

const TOKEN = "pinned-token-0123456789";
const MODELS = [
  { id: "held", source: "synthetic:64KiB" },
  { id: "other", source: "synthetic:64KiB" },
];

async function start(mode: "exclusive" | "shared") {
  const service = await startService(testConfig({
    gpu: "cpu",
    mode,
    token: TOKEN,
    modelsFile: writeModelsFile(MODELS),
  }));
  const post = async (path: string, body: unknown, token: string | null) => {
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (token) headers.authorization = `Bearer ${token}`;
    const response = await service.app.request(path, {
      method: "POST",
      headers,
      body: JSON.stringify(body),
    });
    return { status: response.status, json: await response.json() };
  };
  // The token holder loads and pins their model.
  assert.equal((await post("/api/v1/models/held/load", { device: "cpu" }, TOKEN)).status, 200);
  assert.equal((await post("/api/v1/models/held/pin", {}, TOKEN)).status, 200);
  return { service, post, [Symbol.asyncDispose]: () => service.close() };
}

Deno.test("pinned - in exclusive mode a request without the token never unloads a pinned model", async () => {
  await using s = await start("exclusive");
  const infer = await s.post("/api/v1/pipelines/other/infer", {
    inputs: { input: { type: "float32", dims: [1, 16], data: new Array(16).fill(0) } },
  }, null);
  assert.equal(infer.status, 409, JSON.stringify(infer.json));
  assert.match(infer.json.error.message, /held is pinned and a request never unloads a pinned/);
  assert.equal(s.service.services.scheduler.model("held").state, "cpu", "still loaded");
});

for (const mode of ["exclusive", "shared"] as const) {
  Deno.test(`pinned - a switch (${mode}) names the pinned models it would unload and needs force`, async () => {
    await using s = await start(mode);
    const refused = await s.post("/v1/models/switch", { model: "other" }, TOKEN);
    assert.equal(refused.status, 409, JSON.stringify(refused.json));
    assert.match(refused.json.error.message, /would unload held is pinned; send "force": true/);
    assert.equal(s.service.services.scheduler.model("held").state, "cpu", "nothing unloaded");
    const forced = await s.post("/v1/models/switch", { model: "other", force: true }, TOKEN);
    assert.equal(forced.status, 200, JSON.stringify(forced.json));
    assert.deepEqual(forced.json.unloaded, ["held"]);
  });
}
