// The generated manifests: routes/_manifest.ts and islands/_manifest.ts are exactly what
// `deno task manifest` writes from the files (a stale one fails here), paths mirror the
// files the way Fresh maps them, and fixed names are tried before parameters.
import assert from "node:assert/strict";
import {
  compareRoutePaths,
  generateManifests,
  ISLANDS_MANIFEST,
  renderRoutesManifest,
  routeFiles,
  routePath,
  ROUTES_MANIFEST,
  staleManifests,
} from "../scripts/manifest.ts";
import { routes } from "../routes/_manifest.ts";

const ROOT = new URL("../", import.meta.url);

Deno.test("manifest - the committed manifests are what `deno task manifest` writes", async () => {
  const generated = await generateManifests(ROOT);
  assert.deepEqual([...generated.keys()].sort(), [ISLANDS_MANIFEST, ROUTES_MANIFEST]);
  for (const [path, text] of generated) {
    const committed = await Deno.readTextFile(new URL(path, ROOT));
    assert.equal(committed, text, `${path} is stale: run \`deno task manifest\` and commit it`);
  }
  // Every route file is served, under the path its file names.
  const files = await routeFiles(ROOT);
  assert.ok(files.length >= 20, `only ${files.length} route files found`);
  assert.deepEqual(routes.map(([path]) => path).sort(), files.map(routePath).sort());
});

Deno.test("manifest - a route file added, removed or renamed makes the manifest stale", async () => {
  const root = await Deno.makeTempDir({ prefix: "headroom-manifest-" });
  try {
    const dir = new URL(`file://${root}/`);
    await Deno.mkdir(new URL("routes/api/[id]", dir), { recursive: true });
    await Deno.mkdir(new URL("islands", dir));
    await Deno.writeTextFile(new URL("routes/index.tsx", dir), "");
    await Deno.writeTextFile(new URL("routes/api/[id]/run.ts", dir), "");
    await Deno.writeTextFile(new URL("islands/Chart.tsx", dir), "");
    for (const [path, text] of await generateManifests(dir)) {
      await Deno.writeTextFile(new URL(path, dir), text);
    }
    assert.deepEqual(await staleManifests(dir), []);
    await Deno.writeTextFile(new URL("routes/api/extra.ts", dir), "");
    assert.deepEqual(await staleManifests(dir), [ROUTES_MANIFEST]);
    await Deno.remove(new URL("routes/api/extra.ts", dir));
    await Deno.rename(new URL("islands/Chart.tsx", dir), new URL("islands/Graph.tsx", dir));
    assert.deepEqual(await staleManifests(dir), [ISLANDS_MANIFEST]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("manifest - paths mirror the files; _ files, _ folders and (_lib) groups are not routes", async () => {
  assert.equal(routePath("index.tsx"), "/");
  assert.equal(routePath("metrics.ts"), "/metrics");
  assert.equal(routePath("api/openapi.json.ts"), "/api/openapi.json");
  assert.equal(routePath("api/v1/models/[id]/load.ts"), "/api/v1/models/:id/load");
  assert.equal(routePath("api/v1/hardware/vram.ts"), "/api/v1/hardware/vram");
  assert.equal(routePath("docs/index.ts"), "/docs");
  assert.equal(routePath("(admin)/users.ts"), "/users");
  assert.throws(() => routePath("files/[...rest].ts"), /routes\/files\/\[\.\.\.rest\]\.ts/);

  const root = await Deno.makeTempDir({ prefix: "headroom-manifest-" });
  try {
    const dir = new URL(`file://${root}/`);
    for (
      const folder of [
        "routes/v1/_internal",
        "routes/v1/models",
        "routes/(_lib)",
        "routes/v1/(_lib)",
        "routes/(admin)",
      ]
    ) {
      await Deno.mkdir(new URL(folder, dir), { recursive: true });
    }
    for (
      const file of [
        "routes/_ocr.ts",
        "routes/(_lib)/ocr.ts",
        "routes/v1/(_lib)/chat_models.ts",
        "routes/(admin)/users.ts",
        "routes/v1/_internal/secret.ts",
        "routes/v1/models.ts",
        "routes/v1/models/[model].ts",
        "routes/v1/models/switch.ts",
        "routes/v1/models/switch_test.ts",
        "routes/v1/README.md",
      ]
    ) await Deno.writeTextFile(new URL(file, dir), "");
    assert.deepEqual((await routeFiles(dir)).sort(), [
      "(admin)/users.ts",
      "v1/models.ts",
      "v1/models/[model].ts",
      "v1/models/switch.ts",
    ]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("manifest - fixed names come before parameters, so they are tried first", () => {
  const paths = ["/v1/models/:model", "/api/v1/models/:id", "/v1/models/switch", "/"];
  paths.push("/api/v1/models/test-load", "/api/v1/models", "/api/v1/models/:id/load");
  assert.deepEqual(paths.sort(compareRoutePaths), [
    "/",
    "/api/v1/models",
    "/api/v1/models/test-load",
    "/api/v1/models/:id",
    "/api/v1/models/:id/load",
    "/v1/models/switch",
    "/v1/models/:model",
  ]);
  const served = routes.map(([path]) => path);
  assert.ok(served.indexOf("/api/v1/models/test-load") < served.indexOf("/api/v1/models/:id"));
  assert.throws(
    () => renderRoutesManifest(["a/[id].ts", "a/[name].ts"]),
    /routes\/a\/\[id\]\.ts and routes\/a\/\[name\]\.ts both serve/,
  );
});
