import assert from "node:assert/strict";
import { CatalogError, loadCatalog } from "../core/models/catalog.ts";
import { tempDirSync } from "./_temp.ts";

const dataDir = () => tempDirSync("headroom-catalog-");

function fileWith(content: string): string {
  const dir = tempDirSync("headroom-models-");
  Deno.writeTextFileSync(`${dir}/models.json`, content);
  return `${dir}/models.json`;
}

async function rejects(content: string, message: RegExp) {
  await assert.rejects(() => loadCatalog(fileWith(content), dataDir()), (error: Error) => {
    assert.ok(error instanceof CatalogError, String(error));
    assert.match(error.message, message);
    return true;
  });
}

Deno.test("loadCatalog - the built-in catalog resolves PaddleOCR and Silero files from npm", async () => {
  const catalog = await loadCatalog(null, dataDir());
  assert.deepEqual(catalog.ids(), ["ocr-det", "ocr-cls", "ocr-rec", "silero-vad"]);
  const rec = catalog.find("ocr-rec")!;
  assert.match(rec.path, /ch_PP-OCRv4_rec_infer\.onnx$/);
  assert.match(rec.assets.keys, /ppocr_keys_v1\.txt$/);
  assert.match(rec.pluginUrl!, /^file:\/\/.*plugins\/ocr_rec\.ts$/);
  assert.ok(Deno.statSync(catalog.find("silero-vad")!.path).size > 1_000_000);
});

Deno.test("loadCatalog - the example models file loads, synthetic models are generated once", async () => {
  const dir = dataDir();
  const catalog = await loadCatalog(
    new URL("../examples/models.synthetic.json", import.meta.url).pathname,
    dir,
  );
  assert.equal(catalog.list().length, 5);
  const a = catalog.find("synthetic-a")!;
  assert.equal(a.syntheticBytes, 8 * 2 ** 20);
  const path = await catalog.materialize(a);
  const size = Deno.statSync(path).size + Deno.statSync(`${path}.data`).size;
  assert.ok(Math.abs(size - 8 * 2 ** 20) / (8 * 2 ** 20) < 0.02, `${size} bytes`);
  assert.ok(Deno.statSync(path).size < 64 * 1024, "the weights are in the external data file");
  assert.equal(
    await catalog.materialize(catalog.find("synthetic-b")!),
    path,
    "same size, same file",
  );
});

Deno.test("loadCatalog - a bad models file names the entry and field", async () => {
  await rejects("{not json", /not valid JSON/);
  await rejects(JSON.stringify({ models: [] }), /field "models": must list at least one model/);
  await rejects(
    JSON.stringify({ models: [{ id: "Bad Id", source: "synthetic:1MiB" }] }),
    /field "models.0.id"/,
  );
  await rejects(
    JSON.stringify({ models: [{ id: "a", source: "synthetic:lots" }] }),
    /synthetic size/,
  );
  await rejects(
    JSON.stringify({
      models: [{ id: "a", source: "synthetic:1MiB" }, { id: "a", source: "synthetic:1MiB" }],
    }),
    /"a" appears twice/,
  );
  await rejects(
    JSON.stringify({ models: [{ id: "a", source: "./missing.onnx" }] }),
    /model "a" source: file not found/,
  );
  await rejects(
    JSON.stringify({ models: [{ id: "a", source: "synthetic:1MiB", plugin: "builtin:nope" }] }),
    /unknown plugin "builtin:nope"; built-in plugins are builtin:ocr-det/,
  );
  await rejects(
    JSON.stringify({ models: [{ id: "a", source: "synthetic:1MiB", priority: "urgent" }] }),
    /field "models.0.priority": expected high, normal or low/,
  );
  await assert.rejects(
    () => loadCatalog("/nonexistent/models.json", dataDir()),
    /Cannot read the models file/,
  );
});

Deno.test("loadCatalog - a model's default priority is read from the models file (absent: none, the service's normal)", async () => {
  const catalog = await loadCatalog(
    fileWith(JSON.stringify({
      models: [
        { id: "batch", source: "synthetic:1MiB", priority: "low" },
        { id: "plain", source: "synthetic:1MiB" },
      ],
    })),
    dataDir(),
  );
  assert.equal(catalog.find("batch")!.priority, "low");
  assert.equal(catalog.find("plain")!.priority, undefined);
});
