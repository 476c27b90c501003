import assert from "node:assert/strict";
import {
  browserGlobals,
  forbiddenImports,
  importCycles,
  type ModuleGraph,
  readModuleGraph,
  ROOT,
} from "./_module_graph.ts";

/** Every program the repository starts: the service, its workers, the browser bundle, tools. */
async function entryPoints(): Promise<string[]> {
  const entries = [
    "main.ts",
    "serve.ts",
    "workers/pipeline_worker.ts",
    "workers/engines/probe_worker.ts",
    "islands/_client.ts",
  ];
  for (const folder of ["scripts", "plugins", "bench"]) {
    for await (const entry of Deno.readDir(new URL(`${folder}/`, ROOT))) {
      if (entry.isFile && /\.tsx?$/.test(entry.name)) entries.push(`${folder}/${entry.name}`);
    }
  }
  return entries.sort();
}

Deno.test("layers - core imports only core and ffi, and no folder crosses its layer", async () => {
  const graph = await readModuleGraph(await entryPoints());
  // The graph really is the repository's: the scheduler and the worker are in it.
  assert.ok(graph.has("core/placement/scheduler.ts"), "the scheduler is not in the graph");
  assert.ok(graph.has("workers/pipeline_worker.ts"), "the worker is not in the graph");
  assert.ok(graph.size > 150, `only ${graph.size} local modules found`);
  assert.deepEqual(forbiddenImports(graph), []);
});

/** Every local module `start` reaches, itself included. */
function reachable(graph: ModuleGraph, start: string): string[] {
  const seen = new Set<string>([start]);
  for (const module of seen) {
    for (const to of graph.get(module) ?? []) if (!to.startsWith("npm:")) seen.add(to);
  }
  return [...seen].sort();
}

Deno.test("layers - the app takes its routes as a parameter; the tools' API client holds no browser code", async () => {
  const graph = await readModuleGraph(await entryPoints());
  // The composition root passes the manifest in; the app itself imports no route.
  assert.ok(graph.get("server/service.ts")?.includes("routes/_manifest.ts"));
  assert.deepEqual(graph.get("server/app.ts")?.filter((to) => to.startsWith("routes/")), []);
  // npm packages are in the graph, so the browser-only ones are really ruled out.
  assert.ok(graph.get("dashboard/page_api.ts")?.includes("npm:@preact/signals"));
  const tools = [...graph.keys()].filter((m) => m.startsWith("scripts/"));
  assert.ok(tools.some((m) => graph.get(m)!.includes("api_client/mod.ts")));
  // What the tools import from the client, all the way down, touches no browser global.
  const client = reachable(graph, "api_client/mod.ts");
  assert.ok(client.includes("core/types.ts"), client.join(", "));
  const browserUse: string[] = [];
  for (const module of [...client, ...reachable(graph, "api_client/ndjson.ts")]) {
    const used = browserGlobals(await Deno.readTextFile(new URL(module, ROOT)));
    if (used.length > 0) browserUse.push(`${module}: ${used.join(", ")}`);
  }
  assert.deepEqual(browserUse, []);
  // The scan does see them where the page keeps its token.
  assert.deepEqual(
    browserGlobals(await Deno.readTextFile(new URL("dashboard/page_api.ts", ROOT))),
    ["document", "sessionStorage"],
  );
});

Deno.test("layers - the module graph has no import cycle", async () => {
  const graph = await readModuleGraph(await entryPoints());
  assert.deepEqual(importCycles(graph), []);
});

Deno.test("layers - the checks find a forbidden import and a cycle when there is one", () => {
  const graph: ModuleGraph = new Map([
    ["core/a.ts", ["core/b.ts", "server/app.ts"]],
    ["core/b.ts", ["core/c.ts"]],
    ["core/c.ts", ["core/a.ts"]],
    ["server/app.ts", ["core/a.ts"]],
    ["workers/w.ts", ["workers/w.ts", "ffi/nvml.ts"]],
    ["runtime/page.ts", ["islands/_manifest.ts"]],
  ]);
  assert.deepEqual(forbiddenImports(graph), [
    "core/a.ts → server/app.ts",
    "runtime/page.ts → islands/_manifest.ts",
  ]);
  assert.deepEqual(importCycles(graph), [
    ["core/a.ts", "core/b.ts", "core/c.ts", "server/app.ts"],
    ["workers/w.ts"],
  ]);
});

Deno.test("layers - the checks find the app → routes loop and a tool that imports browser code", () => {
  const graph: ModuleGraph = new Map([
    ["server/app.ts", ["server/http/context.ts", "routes/_manifest.ts"]],
    ["server/http/openapi.ts", ["routes/api/openapi.json.ts"]],
    ["server/service.ts", ["server/app.ts", "routes/_manifest.ts"]],
    ["routes/_manifest.ts", ["routes/api/v1/health.ts", "server/http/context.ts"]],
    ["scripts/load.ts", ["api_client/mod.ts", "server/serve_headroom.ts", "npm:zod"]],
    ["scripts/bad.ts", ["dashboard/page_api.ts", "islands/EventLog.tsx", "npm:@preact/signals"]],
    ["scripts/_lib/bad.ts", ["components/Tip.tsx", "runtime/client/revive.ts"]],
    ["api_client/mod.ts", ["core/types.ts", "npm:@preact/signals"]],
    ["dashboard/live_vram.ts", ["npm:@preact/signals", "api_client/mod.ts"]],
    ["components/Tip.tsx", ["npm:uplot"]],
  ]);
  assert.deepEqual(forbiddenImports(graph), [
    "api_client/mod.ts → npm:@preact/signals",
    "components/Tip.tsx → npm:uplot",
    "scripts/_lib/bad.ts → components/Tip.tsx",
    "scripts/_lib/bad.ts → runtime/client/revive.ts",
    "scripts/bad.ts → dashboard/page_api.ts",
    "scripts/bad.ts → islands/EventLog.tsx",
    "scripts/bad.ts → npm:@preact/signals",
    "server/app.ts → routes/_manifest.ts",
    "server/http/openapi.ts → routes/api/openapi.json.ts",
  ]);
  assert.deepEqual(
    browserGlobals(
      [
        "// document.cookie in a comment is not a use",
        "/* nor sessionStorage.getItem here */",
        "const t = sessionStorage.getItem(KEY);",
        'window["x"] = 1; const url = "https://example.com"; // https://a.b',
        "const documented = documentation.length;",
      ].join("\n"),
    ),
    ["sessionStorage", "window"],
  );
});

Deno.test("layers - core/placement is a few files whose imports form a tree, not a mesh", async () => {
  const graph = await readModuleGraph(["core/placement/scheduler.ts"]);
  const inside = [...graph.keys()].filter((file) => file.startsWith("core/placement/")).sort();
  const arrows = inside.flatMap((from) =>
    graph.get(from)!.filter((to) => to.startsWith("core/placement/")).map((to) => `${from} → ${to}`)
  );
  // scheduler, budget, releases, sections, keep-alive, events, measure, types (was 24 files, 96 arrows).
  assert.ok(inside.length <= 8, `core/placement has ${inside.length} files: ${inside.join(", ")}`);
  assert.ok(
    arrows.length <= 20,
    `${arrows.length} import arrows inside core/placement:\n${arrows.join("\n")}`,
  );
  const sub = new Map(
    inside.map((file) => [file, graph.get(file)!.filter((to) => inside.includes(to))]),
  );
  assert.deepEqual(importCycles(sub), []);
  // Only the Scheduler imports the mechanisms beside it; none of them imports the Scheduler.
  for (const file of inside) {
    if (file === "core/placement/scheduler.ts") continue;
    assert.ok(
      !sub.get(file)!.includes("core/placement/scheduler.ts"),
      `${file} imports the Scheduler`,
    );
  }
});
