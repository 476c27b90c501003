/**
 * The repository's module graph, read with `deno info --json`, and the layer rules it
 * must keep: which folder may import which (and which may import browser-only
 * packages), and no import cycles. The rules
 * are the ones docs/architecture.md draws; tests/layers_test.ts checks them.
 * @module
 */
import { fileURLToPath, pathToFileURL } from "node:url";

/**
 * Local module → what it imports: local modules (repository-relative paths) and npm
 * packages (`npm:<name>`, no version), so a rule can forbid a browser-only package.
 */
export type ModuleGraph = Map<string, string[]>;

/** npm packages only the page's code may import; a layer that may lists them in its rule. */
export const BROWSER_PACKAGES: readonly string[] = ["npm:@preact/signals", "npm:uplot"];

/** What the server side may import: everything but the routes (the app takes them as a parameter). */
const SERVER_PARTS = [
  "server",
  "runtime",
  "islands",
  "components",
  "dashboard",
  "core",
  "workers",
  "ffi",
  "plugins",
];

/**
 * Where a module may import from, by the folder (or file) it lives in: the longest key
 * that contains it applies (`server/http/http_error.ts` follows `server/http`, not `server`).
 * An entry allows that folder or file and everything under it.
 */
export const LAYER_RULES: Readonly<Record<string, readonly string[]>> = {
  // The domain: measuring, placing, moving. Nothing of HTTP, pages or workers' insides.
  core: ["core", "ffi"],
  // Driver bindings: nothing but themselves.
  ffi: ["ffi"],
  // The islands runtime (Fresh's runtime/): knows no island and no domain.
  runtime: ["runtime", "npm:@preact/signals"],
  // Where a model runs: the worker and its host implement core's PipelineHost.
  workers: ["workers", "core", "ffi"],
  // Pipeline plugins run inside a worker.
  plugins: ["plugins", "workers", "core"],
  // The HTTP API's client: fetch only, no browser code, so the terminal tools import it.
  api_client: ["api_client", "core"],
  // Browser code: the dashboard's stores and view logic, JSX components, islands.
  dashboard: ["dashboard", "api_client", "core", ...BROWSER_PACKAGES],
  components: ["components", "dashboard", "core"],
  islands: ["islands", "components", "dashboard", "runtime", "core", ...BROWSER_PACKAGES],
  // The HTTP surface.
  routes: ["routes", ...SERVER_PARTS],
  // The composition root (service.ts, serve_headroom.ts) passes routes/_manifest.ts to the
  // app; the app and its HTTP parts never import a route (routes import them: no loop).
  server: ["routes", ...SERVER_PARTS],
  "server/app.ts": SERVER_PARTS,
  "server/http": SERVER_PARTS,
  // Terminal tools and benchmarks: Headroom in-process and the API client, no browser code.
  scripts: [
    "scripts",
    "bench",
    "server",
    "core",
    "workers",
    "ffi",
    "plugins",
    "api_client",
    "runtime/server",
  ],
  bench: ["bench", "tests", "server", "core", "workers", "ffi", "plugins", "api_client"],
};

/** Repository root (a file: URL ending in a slash). */
export const ROOT: URL = new URL("../", import.meta.url);

/** Reads the graph of every local module reachable from `entries` (repository-relative). */
export async function readModuleGraph(entries: readonly string[]): Promise<ModuleGraph> {
  // One `deno info` over a root that imports every entry: one process instead of one each.
  const dir = await Deno.makeTempDir({ prefix: "headroom-graph-" });
  try {
    const root = `${dir}/entries.ts`;
    await Deno.writeTextFile(
      root,
      entries.map((entry) => `import ${JSON.stringify(new URL(entry, ROOT).href)};\n`).join(""),
    );
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", `--config=${fileURLToPath(new URL("deno.json", ROOT))}`, root],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!output.success) {
      throw new Error(`deno info failed: ${new TextDecoder().decode(output.stderr)}`);
    }
    return graphFromInfo(JSON.parse(new TextDecoder().decode(output.stdout)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

interface DenoInfoModule {
  specifier: string;
  dependencies?: { code?: { specifier?: string }; type?: { specifier?: string } }[];
}

/** `npm:@preact/signals@2.11.4/x` → `npm:@preact/signals`; null for anything else. */
function npmPackage(specifier: string | undefined): string | null {
  const match = /^npm:\/?((?:@[^/@]+\/)?[^/@]+)/.exec(specifier ?? "");
  return match ? `npm:${match[1]}` : null;
}

/**
 * The repository's part of `deno info --json`'s answer: each local module and what it
 * imports (local modules, and npm packages by name); the temp root and npm's insides left out.
 */
export function graphFromInfo(info: { modules: DenoInfoModule[] }): ModuleGraph {
  const prefix = pathToFileURL(fileURLToPath(ROOT)).href;
  const local = (specifier: string | undefined) =>
    specifier?.startsWith(prefix) && !specifier.includes("/node_modules/")
      ? specifier.slice(prefix.length)
      : npmPackage(specifier);
  const graph: ModuleGraph = new Map();
  for (const module of info.modules) {
    const from = local(module.specifier);
    if (!from || from.startsWith("npm:")) continue;
    const to = new Set<string>();
    for (const dependency of module.dependencies ?? []) {
      for (const target of [dependency.code?.specifier, dependency.type?.specifier]) {
        const path = local(target);
        if (path) to.add(path);
      }
    }
    graph.set(from, [...to]);
  }
  return graph;
}

/** The rule key that governs `path`: the longest key naming it or a folder above it. */
function ruleFor(path: string, rules: Readonly<Record<string, readonly string[]>>) {
  let best: string | null = null;
  for (const key of Object.keys(rules)) {
    if ((path === key || path.startsWith(`${key}/`)) && key.length > (best?.length ?? -1)) {
      best = key;
    }
  }
  return best === null ? null : rules[best];
}

/**
 * Every import that crosses into a folder (or a browser-only package) its layer may not
 * use, as "from → to" lines. npm packages other than `restricted` ones are not checked.
 */
export function forbiddenImports(
  graph: ModuleGraph,
  rules: Readonly<Record<string, readonly string[]>> = LAYER_RULES,
  restricted: readonly string[] = BROWSER_PACKAGES,
): string[] {
  const found: string[] = [];
  for (const [from, targets] of graph) {
    const allowed = ruleFor(from, rules);
    if (!allowed) continue; // entry points at the root and tests/
    for (const to of targets) {
      if (to.startsWith("npm:") && !restricted.includes(to)) continue;
      if (!allowed.some((entry) => to === entry || to.startsWith(`${entry}/`))) {
        found.push(`${from} → ${to}`);
      }
    }
  }
  return found.sort();
}

/** The browser globals a module's code (comments left out) touches: storage, the document, the window. */
export function browserGlobals(source: string): string[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:])\/\/.*$/gm, "$1");
  const used = code.match(/\b(sessionStorage|localStorage|document|window)(?=\s*[.[])/g) ?? [];
  return [...new Set(used)].sort();
}

/** Every import cycle (strongly connected set of two or more modules, or a self-import). */
export function importCycles(graph: ModuleGraph): string[][] {
  // Tarjan's algorithm, iterative so a deep graph cannot overflow the stack.
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const cycles: string[][] = [];
  for (const start of graph.keys()) {
    if (index.has(start)) continue;
    const work: { node: string; next: number }[] = [{ node: start, next: 0 }];
    index.set(start, counter);
    low.set(start, counter++);
    stack.push(start);
    onStack.add(start);
    while (work.length > 0) {
      const frame = work[work.length - 1];
      const targets = graph.get(frame.node) ?? [];
      if (frame.next < targets.length) {
        const target = targets[frame.next++];
        if (!index.has(target)) {
          index.set(target, counter);
          low.set(target, counter++);
          stack.push(target);
          onStack.add(target);
          work.push({ node: target, next: 0 });
        } else if (onStack.has(target)) {
          low.set(frame.node, Math.min(low.get(frame.node)!, index.get(target)!));
        }
        continue;
      }
      work.pop();
      if (work.length > 0) {
        const parent = work[work.length - 1].node;
        low.set(parent, Math.min(low.get(parent)!, low.get(frame.node)!));
      }
      if (low.get(frame.node) === index.get(frame.node)) {
        const members: string[] = [];
        let member: string;
        do {
          member = stack.pop()!;
          onStack.delete(member);
          members.push(member);
        } while (member !== frame.node);
        const selfImport = (graph.get(frame.node) ?? []).includes(frame.node);
        if (members.length > 1 || selfImport) cycles.push(members.sort());
      }
    }
  }
  return cycles;
}
