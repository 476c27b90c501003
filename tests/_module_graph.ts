/**
 * The repository's module graph, read with `deno info --json`, and the layer rules it
 * must keep: which top-level folder may import which, and no import cycles. The rules
 * are the ones docs/architecture.md draws; tests/layers_test.ts checks them.
 * @module
 */
import { fileURLToPath, pathToFileURL } from "node:url";

/** Local module → the local modules it imports (repository-relative paths). */
export type ModuleGraph = Map<string, string[]>;

/** Where a module may import from, by the top-level folder it lives in. */
export const LAYER_RULES: Readonly<Record<string, readonly string[]>> = {
  // The domain: measuring, placing, moving. Nothing of HTTP, pages or workers' insides.
  core: ["core", "ffi"],
  // Driver bindings: nothing but themselves.
  ffi: ["ffi"],
  // The islands runtime (Fresh's runtime/): knows no island and no domain.
  runtime: ["runtime"],
  // Where a model runs: the worker and its host implement core's PipelineHost.
  workers: ["workers", "core", "ffi"],
  // Pipeline plugins run inside a worker.
  plugins: ["plugins", "workers", "core"],
  // Browser code: components and islands share only core's boundary types.
  components: ["components", "core"],
  islands: ["islands", "components", "runtime", "core"],
  // The HTTP surface and the composition root.
  routes: ["routes", "server", "runtime", "islands", "components", "core", "workers", "plugins"],
  server: [
    "server",
    "routes",
    "runtime",
    "islands",
    "components",
    "core",
    "workers",
    "ffi",
    "plugins",
  ],
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

/** The local part of `deno info --json`'s answer (npm packages and the temp root left out). */
export function graphFromInfo(info: { modules: DenoInfoModule[] }): ModuleGraph {
  const prefix = pathToFileURL(fileURLToPath(ROOT)).href;
  const local = (specifier: string | undefined) =>
    specifier?.startsWith(prefix) && !specifier.includes("/node_modules/")
      ? specifier.slice(prefix.length)
      : null;
  const graph: ModuleGraph = new Map();
  for (const module of info.modules) {
    const from = local(module.specifier);
    if (!from) continue;
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

/** Every import that crosses into a folder its layer may not use, as "from → to" lines. */
export function forbiddenImports(
  graph: ModuleGraph,
  rules: Readonly<Record<string, readonly string[]>> = LAYER_RULES,
): string[] {
  const layerOf = (path: string) => path.includes("/") ? path.slice(0, path.indexOf("/")) : path;
  const found: string[] = [];
  for (const [from, targets] of graph) {
    const allowed = rules[layerOf(from)];
    if (!allowed) continue; // entry points and tools at the root, scripts/, bench/, tests/
    for (const to of targets) {
      if (!allowed.includes(layerOf(to))) found.push(`${from} → ${to}`);
    }
  }
  return found.sort();
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
