/**
 * A request's priority over HTTP: `X-Headroom-Priority` on Headroom's own routes,
 * `parameters.priority` (a name or Triton's integer) in v2; a bad value is a 400 naming the
 * header or field, and a good one reaches the scheduler (the pipeline's priority is its
 * last request's, which eviction reads; `GET /api/v1/scheduler` shows it).
 */
import assert from "node:assert/strict";
import { startService } from "../server/service.ts";
import { testConfig } from "./_service.ts";
import { tempDirSync } from "./_temp.ts";
import { specExampleModel } from "./fixtures/oip_models.ts";

async function start() {
  const dir = tempDirSync("headroom-priority-");
  Deno.writeFileSync(`${dir}/spec.onnx`, specExampleModel());
  Deno.writeTextFileSync(
    `${dir}/models.json`,
    JSON.stringify({ models: [{ id: "identities", source: "spec.onnx", priority: "low" }] }),
  );
  const service = await startService(
    testConfig({ gpu: "cpu", modelsFile: `${dir}/models.json` }),
  );
  return {
    service,
    request: (path: string, init?: RequestInit) => service.app.request(path, init),
    priority: () =>
      service.services.scheduler.status().pipelines.find((p) => p.id === "identities")!.priority,
    async [Symbol.asyncDispose]() {
      await service[Symbol.asyncDispose]();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

const json = (body: unknown, headers: Record<string, string> = {}): RequestInit => ({
  method: "POST",
  headers: { "content-type": "application/json", ...headers },
  body: JSON.stringify(body),
});

/** The inputs of the protocol's own request example (input0 UINT32 [2, 2], input1 BOOL [3]). */
const INPUTS = {
  input0: { type: "uint32", dims: [2, 2], data: [1, 2, 3, 4] },
  input1: { type: "bool", dims: [3], data: [true, false, true] },
};
const V2_INPUTS = [
  { name: "input0", shape: [2, 2], datatype: "UINT32", data: [1, 2, 3, 4] },
  { name: "input1", shape: [3], datatype: "BOOL", data: [true, false, true] },
];

Deno.test("priority - X-Headroom-Priority reaches the scheduler; a bad one is a 400 naming the header; the model's default counts otherwise", async () => {
  await using t = await start();
  const infer = (headers: Record<string, string> = {}) =>
    t.request(
      "/api/v1/pipelines/identities/infer",
      json({ inputs: INPUTS }, headers),
    );
  assert.equal(t.priority(), "low", "the models file's default before any request");
  const bad = await infer({ "X-Headroom-Priority": "urgent" });
  assert.equal(bad.status, 400);
  const body = await bad.json();
  assert.equal(body.error.code, "bad_header");
  assert.match(
    body.error.message,
    /header "X-Headroom-Priority": expected high, normal or low, got "urgent"/,
  );
  const ok = await infer({ "X-Headroom-Priority": "HIGH" });
  assert.equal(ok.status, 200, await ok.text());
  assert.equal(t.priority(), "high");
  await (await infer()).body?.cancel();
  assert.equal(t.priority(), "low", "a request without one runs at the model's default");
});

Deno.test("priority - v2 parameters.priority: a name or Triton's integer (0 the default, 1 high, 2 normal, 3+ low); a bad one is a 400 naming the field", async () => {
  await using t = await start();
  const infer = (priority: unknown) =>
    t.request(
      "/v2/models/identities/infer",
      json({ parameters: { priority }, inputs: V2_INPUTS }),
    );
  for (
    const [given, expected] of [[1, "high"], [2, "normal"], [7, "low"], [0, "low"], [
      "high",
      "high",
    ]] as const
  ) {
    const response = await infer(given);
    assert.equal(response.status, 200, await response.text());
    assert.equal(t.priority(), expected, `parameters.priority ${given}`);
  }
  for (const bad of [-1, 1.5, "urgent", true]) {
    const response = await infer(bad);
    assert.equal(response.status, 400, `parameters.priority ${bad}`);
    assert.match(
      (await response.json()).error,
      /field "parameters.priority": expected "high", "normal", "low" or Triton's integer/,
    );
  }
});
