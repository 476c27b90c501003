import assert from "node:assert/strict";
import type { z } from "zod";
import { routes } from "../routes/_manifest.ts";
import type { Method } from "../server/http/context.ts";
import { openApiPath } from "../server/http/openapi.ts";
import { errorShapeOf } from "../server/http/http_error.ts";
import { errorBodySchema } from "../server/http/schemas.ts";
import { startOnFakeGpu } from "./_service.ts";

Deno.test("GET /api/openapi.json - every route and method of the manifest is documented", async () => {
  await using t = await startOnFakeGpu({ gpu: "cpu" });
  const response = await t.request("/api/openapi.json");
  assert.equal(response.status, 200);
  const doc = await response.json();
  assert.equal(doc.openapi, "3.1.0");
  assert.ok(routes.length >= 20);
  for (const [path, handlers, config] of routes) {
    const item = doc.paths[openApiPath(path)];
    assert.ok(item, `${path} is missing from the document`);
    for (const method of Object.keys(handlers)) {
      const operation = item[method.toLowerCase()];
      assert.ok(operation, `${method} ${path} is missing`);
      assert.equal(operation.summary, config.summary);
      if (config.body && method !== "GET") {
        assert.ok(
          operation.requestBody?.content?.["application/json"]?.schema,
          `${method} ${path} has no body schema`,
        );
      }
    }
  }
});

Deno.test("GET /api/openapi.json - body schemas are the validators' own", async () => {
  await using t = await startOnFakeGpu({ gpu: "cpu" });
  const doc = await (await t.request("/api/openapi.json")).json();
  const load = doc.paths["/api/v1/models/{id}/load"].post;
  assert.deepEqual(load.requestBody.content["application/json"].schema.properties.device.enum, [
    "gpu",
    "cpu",
  ]);
  assert.deepEqual(load.security, [{ bearer: [] }]);
  assert.equal(load.parameters[0].name, "id");
  const check =
    doc.paths["/api/v1/hardware/vram/check"].post.requestBody.content["application/json"].schema;
  assert.deepEqual(check.required, ["pipelines"]);
  const history = doc.paths["/api/v1/hardware/vram/history"].get.parameters.map((
    p: { name: string },
  ) => p.name);
  assert.deepEqual(history.sort(), ["points", "seconds"]);
  assert.ok(doc.paths["/api/v1/ocr"].post.requestBody.content["image/png"]);
});

const TOKEN = "openapi-token-0123456789";
const bearer = { authorization: `Bearer ${TOKEN}` };
/** A URL for a route path: parameters filled with names that exist nowhere. */
const concrete = (path: string) => path.replace(/:([A-Za-z_]+)/g, "no-such-$1");

Deno.test("GET /api/openapi.json - `security` is the middleware's own rule, for the running settings", async () => {
  const settings = [{}, { tokenForReads: true }, { tokenForInfer: true }];
  const guarded: Record<string, string[]> = {};
  for (const access of settings) {
    await using t = await startOnFakeGpu({ gpu: "cpu", token: TOKEN, ...access });
    const response = await t.request("/api/openapi.json", { headers: bearer });
    assert.equal(response.status, 200);
    const doc = await response.json();
    const name = JSON.stringify(access);
    guarded[name] = [];
    for (const [path, handlers] of routes) {
      for (const method of Object.keys(handlers)) {
        const operation = doc.paths[openApiPath(path)][method.toLowerCase()];
        const documented = operation.security !== undefined;
        if (documented) {
          assert.deepEqual(operation.security, [{ bearer: [] }]);
          guarded[name].push(`${method} ${path}`);
        }
        // What the running app does without the token: 401 exactly where the document says.
        const controller = new AbortController();
        const answer = await t.request(concrete(path), {
          method,
          signal: controller.signal,
          ...(method === "GET"
            ? {}
            : { headers: { "content-type": "application/json" }, body: "{}" }),
        });
        controller.abort();
        await answer.body?.cancel().catch(() => {});
        assert.equal(
          answer.status === 401,
          documented,
          `${method} ${path} with ${name}: answered ${answer.status} without the token, ` +
            `the document says ${documented ? "guarded" : "open"}`,
        );
      }
    }
  }
  const open = guarded["{}"];
  const reads = guarded['{"tokenForReads":true}'];
  const infer = guarded['{"tokenForInfer":true}'];
  assert.ok(open.includes("POST /api/v1/models/:id/load"));
  assert.ok(!open.includes("GET /api/v1/models"), "reads are open without --token-for-reads");
  assert.ok(reads.includes("GET /api/v1/models"), "--token-for-reads guards GET /api/v1/models");
  assert.ok(!reads.includes("GET /"), "the page stays open");
  assert.ok(!open.includes("POST /api/v1/pipelines/:id/infer"));
  assert.ok(infer.includes("POST /api/v1/pipelines/:id/infer"), "--token-for-infer guards infer");
  assert.ok(infer.includes("POST /v1/chat/completions"));
  assert.ok(!infer.includes("GET /api/v1/models"), "--token-for-infer leaves reads open");
});

Deno.test("GET /api/openapi.json - every JSON operation declares its success body and the error shape", async () => {
  await using t = await startOnFakeGpu({ gpu: "cpu" });
  const doc = await (await t.request("/api/openapi.json")).json();
  let checked = 0;
  for (const [path, handlers, config] of routes) {
    for (const method of Object.keys(handlers)) {
      const { responses } = doc.paths[openApiPath(path)][method.toLowerCase()];
      const what = `${method} ${path}`;
      const error = responses["4XX"].content["application/json"].schema.properties.error;
      if (errorShapeOf(path) === "oip") {
        assert.equal(error.type, "string", `${what}: the Open Inference Protocol's error shape`);
      } else assert.equal(error.required.join(), "code,message", `${what}: the error shape`);
      if ((config.produces ?? "json") !== "json") continue;
      const success = Object.keys(responses).filter((status) => /^2\d\d$/.test(status));
      assert.ok(success.length > 0, `${what} declares no 2xx answer`);
      for (const status of success) {
        const schema = responses[status].content?.["application/json"]?.schema;
        assert.ok(schema?.type || schema?.anyOf, `${what} ${status} has no JSON schema`);
      }
      checked++;
    }
  }
  assert.ok(checked >= 18, `only ${checked} JSON operations`);
  // Response schemas are the routes' own zod schemas: spot-check two.
  const model = doc.paths["/api/v1/models/{id}"].get.responses["200"].content["application/json"];
  assert.ok(model.schema.required.includes("placement"));
  assert.deepEqual(model.schema.properties.state.enum.slice(0, 2), ["unloaded", "loading"]);
  const chains = doc.paths["/api/v1/chains"].post.responses;
  assert.ok(chains["201"] && chains["409"].content["application/json"].schema.properties.check);
});

/** The zod schema a route declares for `method` answering `status`. */
function declared(path: string, method: Method, status: number): z.ZodType {
  const entry = routes.find(([p]) => p === path);
  const schema = entry?.[2].responses?.[method]?.[status];
  assert.ok(schema, `${method} ${path} declares no ${status} body`);
  return schema;
}

/** Checks a body against a schema: it parses, and holds no field the schema leaves out. */
function conforms(schema: z.ZodType, body: unknown, what: string): void {
  const parsed = schema.safeParse(body);
  assert.ok(parsed.success, `${what}: ${parsed.error?.message}`);
  assert.deepEqual(parsed.data, body, `${what} sends fields its schema does not declare`);
}

Deno.test("responses - real answers match the routes' declared response schemas", async () => {
  const dir = await Deno.makeTempDir({ prefix: "headroom-openapi-" });
  try {
    await Deno.writeTextFile(
      `${dir}/models.json`,
      JSON.stringify({ models: [{ id: "tiny", source: "synthetic:64KiB" }] }),
    );
    await using t = await startOnFakeGpu({ modelsFile: `${dir}/models.json` });
    const json = async (path: string, init?: RequestInit, status = 200) => {
      const response = await t.request(path, init);
      const body = await response.json();
      assert.equal(response.status, status, `${path}: ${JSON.stringify(body)}`);
      return body;
    };
    const post = (body: unknown): RequestInit => ({
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    const load = await json("/api/v1/models/tiny/load", post({ device: "cpu" }));
    conforms(declared("/api/v1/models/:id/load", "POST", 200), load, "POST load");
    // After a load: events, figures and profiles are in the report.
    const report = await json("/api/v1/hardware/vram");
    assert.ok(report.events.length > 0 && report.models.length === 1);
    conforms(declared("/api/v1/hardware/vram", "GET", 200), report, "GET vram");
    conforms(declared("/api/v1/health", "GET", 200), await json("/api/v1/health"), "GET health");
    conforms(
      declared("/api/v1/models/:id", "GET", 200),
      await json("/api/v1/models/tiny"),
      "GET model",
    );
    conforms(
      declared("/api/v1/hardware/vram/check", "POST", 200),
      await json("/api/v1/hardware/vram/check", post({ pipelines: ["tiny"] })),
      "POST check",
    );
    conforms(
      declared("/api/v1/hardware/vram/history", "GET", 200),
      await json("/api/v1/hardware/vram/history?points=5"),
      "GET history",
    );
    conforms(declared("/v1/models", "GET", 200), await json("/v1/models"), "GET /v1/models");
    conforms(
      declared("/metrics", "GET", 200),
      await json("/metrics", { headers: { accept: "application/json" } }),
      "GET /metrics (JSON)",
    );
    const unloaded = await json("/api/v1/models/tiny/unload", { method: "POST" });
    conforms(declared("/api/v1/models/:id/unload", "POST", 200), unloaded, "POST unload");
    // The shared error shape, on a real refusal.
    conforms(errorBodySchema, await json("/api/v1/models/nope", undefined, 404), "404");
    // A schema that no longer matches is caught: the check can fail.
    assert.throws(() =>
      conforms(declared("/api/v1/health", "GET", 200), { ...report, extra: 1 }, "wrong")
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("X-Headroom-Priority - documented on exactly the routes whose config says they read it", async () => {
  await using t = await startOnFakeGpu({ gpu: "cpu" });
  const doc = await (await t.request("/api/openapi.json")).json();
  let declared = 0;
  for (const [path, handlers, config] of routes) {
    for (const method of Object.keys(handlers)) {
      const operation = doc.paths[openApiPath(path)][method.toLowerCase()];
      const header = (operation.parameters ?? []).find((p: { in: string; name: string }) =>
        p.in === "header" && p.name === "X-Headroom-Priority"
      );
      assert.equal(!!header, !!config.priority, `${method} ${path}`);
      if (header) {
        declared++;
        assert.deepEqual(header.schema.enum, ["high", "normal", "low"]);
      }
    }
  }
  assert.ok(declared >= 5, `${declared} operations take a priority`);
  // A route module that reads the header declares it in its config (the same file).
  for await (const file of walkTs(new URL("../routes/", import.meta.url))) {
    const source = await Deno.readTextFile(file);
    if (source.includes("headerPriority(")) {
      assert.match(
        source,
        /priority: true/,
        `${file.pathname} reads the header: set priority: true`,
      );
    }
  }
});

async function* walkTs(dir: URL): AsyncGenerator<URL> {
  for await (const entry of Deno.readDir(dir)) {
    const url = new URL(entry.name + (entry.isDirectory ? "/" : ""), dir);
    if (entry.isDirectory) yield* walkTs(url);
    else if (entry.name.endsWith(".ts")) yield url;
  }
}
