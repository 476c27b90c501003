import assert from "node:assert/strict";
import { routes } from "../routes/_manifest.ts";
import { openApiPath } from "../server/http/openapi.ts";
import { startOnFakeGpu } from "./_service.ts";

Deno.test("GET /api/openapi.json - every route and method of the manifest is documented", async () => {
  await using t = await startOnFakeGpu({ gpu: "cpu" });
  const response = await t.request("/api/openapi.json");
  assert.equal(response.status, 200);
  const doc = await response.json();
  assert.equal(doc.openapi, "3.1.0");
  assert.ok(routes.length >= 20);
  for (const [path, handlers, options] of routes) {
    const item = doc.paths[openApiPath(path)];
    assert.ok(item, `${path} is missing from the document`);
    for (const method of Object.keys(handlers)) {
      const operation = item[method.toLowerCase()];
      assert.ok(operation, `${method} ${path} is missing`);
      assert.equal(operation.summary, options.summary);
      if (options.body && method !== "GET") {
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
