import assert from "node:assert/strict";
import {
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
