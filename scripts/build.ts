/**
 * `deno task build`: builds the page assets (island bundle and styles, content-hashed)
 * into static/build/ with a manifest.json, and prints their sizes. The service builds
 * the same assets at start; this prebuilt copy is what it serves where it cannot run
 * `deno bundle` (a compiled binary, no --allow-run).
 * @module
 */
import { BUILD_DIR, buildAssets, writeAssets } from "../runtime/server/bundle.ts";
import { defineTool } from "./_lib/tool.ts";

defineTool({
  name: "build",
  usage: "deno task build",
  about: "Builds the dashboard's island bundle and style sheets (content-hashed) into\n" +
    "static/build/ with a manifest.json, and prints their sizes. The service builds the\n" +
    "same at start; this copy is what it serves where it cannot run `deno bundle`.",
  flags: {},
  notes: "Exit status: 0 built; 1 the bundle failed; 2 a bad flag.",
}).parse(Deno.args);

const started = performance.now();
const assets = await buildAssets();
await Deno.remove(BUILD_DIR, { recursive: true }).catch(() => {});
await writeAssets(assets);
const ms = Math.round(performance.now() - started);
for (const file of assets.files.values()) {
  console.log(
    `${file.url}  ${file.body.byteLength} B (gzip ${file.gzip.byteLength} B, br ${file.br.byteLength} B)`,
  );
}
console.log(`Built ${assets.files.size} files into ${BUILD_DIR.pathname} in ${ms} ms`);
