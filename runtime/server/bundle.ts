/**
 * Builds the page assets once: the island bundle (`deno bundle --platform browser` of
 * the client entry, which registers every island in islands/_manifest.ts) and the style
 * sheet (uPlot's CSS, static/base.css and each island's static/islands/*.css), each content-hashed and compressed ahead of time
 * with gzip and brotli. `deno task build` writes them to static/build/; the service
 * builds them at start and falls back to that prebuilt copy when it cannot run `deno`.
 * @module
 */
import { brotliCompressSync, constants as zlib } from "node:zlib";

/** One built file, ready to serve in every encoding. */
export interface BuiltFile {
  /** File name with its content hash, like `islands-3f2a….js`. */
  name: string;
  /** Where pages link it: `/static/build/<name>`. */
  url: string;
  contentType: string;
  body: Uint8Array<ArrayBuffer>;
  gzip: Uint8Array<ArrayBuffer>;
  br: Uint8Array<ArrayBuffer>;
}

/** The built assets: the island bundle (null when it could not be built) and the styles. */
export interface PageAssets {
  script: BuiltFile | null;
  style: BuiltFile;
  /** Every built file by name, for the static route. */
  files: ReadonlyMap<string, BuiltFile>;
}

/** URL prefix the static route serves built files under. */
export const BUILD_URL = "/static/build/";

const ROOT = new URL("../../", import.meta.url);
const ENTRY = new URL("../../islands/_client.ts", import.meta.url);
/** Where `deno task build` writes, and where the service looks for a prebuilt copy. */
export const BUILD_DIR: URL = new URL("static/build/", ROOT);
const MANIFEST = "manifest.json";
/** The page's own rules (colors, type, panels, controls, the tooltip): before any island's. */
const BASE_STYLE = new URL("static/base.css", ROOT);
/** One style sheet per island (`<Island>.css`), joined after the base in name order. */
export const ISLAND_STYLES: URL = new URL("static/islands/", ROOT);
const UPLOT_STYLE = new URL("node_modules/uplot/dist/uPlot.min.css", ROOT);

/** Bundles the islands for the browser (minified ESM); throws with deno's own message on failure. */
export async function bundleIslands(): Promise<Uint8Array<ArrayBuffer>> {
  const dir = await Deno.makeTempDir({ prefix: "headroom_islands_" });
  try {
    const output = `${dir}/islands.js`;
    const { code, stderr } = await new Deno.Command(Deno.execPath(), {
      args: [
        "bundle",
        "--quiet",
        "--platform=browser",
        "--format=esm",
        "--minify",
        `--config=${new URL("deno.json", ROOT).pathname}`,
        `--output=${output}`,
        ENTRY.pathname,
      ],
      cwd: ROOT.pathname,
      stdout: "null",
      stderr: "piped",
    }).output();
    if (code !== 0) {
      throw new Error(
        `deno bundle of ${ENTRY.pathname} failed (exit ${code}): ` +
          new TextDecoder().decode(stderr).trim(),
      );
    }
    return await Deno.readFile(output);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The style sheets joined into one, in order: uPlot's, static/base.css, then each island's. */
export async function styleSources(): Promise<URL[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(ISLAND_STYLES)) {
    if (entry.isFile && entry.name.endsWith(".css")) names.push(entry.name);
  }
  return [UPLOT_STYLE, BASE_STYLE, ...names.sort().map((name) => new URL(name, ISLAND_STYLES))];
}

/** The one style sheet the page links: {@link styleSources} joined. */
export async function buildStyles(): Promise<Uint8Array<ArrayBuffer>> {
  const parts = await Promise.all((await styleSources()).map((url) => Deno.readTextFile(url)));
  return new TextEncoder().encode(parts.join("\n"));
}

/** A built file for `body`, named `<stem>-<first 16 hex of its SHA-256>.<ext>`. */
export async function builtFile(
  stem: string,
  ext: "js" | "css",
  body: Uint8Array<ArrayBuffer>,
): Promise<BuiltFile> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", body));
  const hash = Array.from(digest.slice(0, 8), (b) => b.toString(16).padStart(2, "0")).join("");
  const name = `${stem}-${hash}.${ext}`;
  const gzip = new Uint8Array(
    await new Response(new Blob([body]).stream().pipeThrough(new CompressionStream("gzip")))
      .arrayBuffer(),
  );
  const br = new Uint8Array(
    brotliCompressSync(body, { params: { [zlib.BROTLI_PARAM_QUALITY]: 11 } }),
  );
  return {
    name,
    url: BUILD_URL + name,
    contentType: ext === "js" ? "text/javascript; charset=utf-8" : "text/css; charset=utf-8",
    body,
    gzip,
    br,
  };
}

function assets(script: BuiltFile | null, style: BuiltFile): PageAssets {
  const files = new Map([[style.name, style]]);
  if (script) files.set(script.name, script);
  return { script, style, files };
}

/** Builds every asset now (the bundle takes a `deno` subprocess: about a second). */
export async function buildAssets(): Promise<PageAssets> {
  const [script, style] = await Promise.all([
    bundleIslands().then((body) => builtFile("islands", "js", body)),
    buildStyles().then((body) => builtFile("styles", "css", body)),
  ]);
  return assets(script, style);
}

/** Writes built assets and their manifest to `dir` (what `deno task build` does). */
export async function writeAssets(built: PageAssets, dir: URL = BUILD_DIR): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  for (const file of built.files.values()) await Deno.writeFile(new URL(file.name, dir), file.body);
  const manifest = { script: built.script?.name ?? null, style: built.style.name };
  await Deno.writeTextFile(new URL(MANIFEST, dir), JSON.stringify(manifest, null, 2) + "\n");
}

/** Reads assets that `deno task build` wrote; null when there are none. */
export async function readPrebuilt(dir: URL = BUILD_DIR): Promise<PageAssets | null> {
  let manifest: { script: string | null; style: string };
  try {
    manifest = JSON.parse(await Deno.readTextFile(new URL(MANIFEST, dir)));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
  const load = async (name: string, ext: "js" | "css") => {
    const file = await builtFile(
      name.slice(0, name.indexOf("-")),
      ext,
      await Deno.readFile(new URL(name, dir)),
    );
    if (file.name !== name) {
      throw new Error(`Prebuilt ${name} does not match its hash: run deno task build`);
    }
    return file;
  };
  return assets(
    manifest.script ? await load(manifest.script, "js") : null,
    await load(manifest.style, "css"),
  );
}

let prepared: Promise<PageAssets> | null = null;

/**
 * The page assets, built on the first call and shared by every later one (never per
 * request). Call it at service start so the first page does not wait. When the bundle
 * cannot be built it uses static/build/ from `deno task build`; failing that, pages are
 * served without their island script (still readable, not live) and the error is logged.
 */
export function preparePageAssets(): Promise<PageAssets> {
  prepared ??= buildAssets().catch(async (error) => {
    const prebuilt = await readPrebuilt().catch(() => null);
    if (prebuilt?.script) {
      console.warn(
        `Islands: ${error.message}; serving the prebuilt bundle ${prebuilt.script.name}`,
      );
      return prebuilt;
    }
    console.error(`Islands: ${error.message}; pages are served without their scripts`);
    return assets(null, await builtFile("styles", "css", await buildStyles()));
  });
  return prepared;
}
