import assert from "node:assert/strict";
import { signal } from "@preact/signals";
import type { ModelRow, VramReport } from "../core/types.ts";
import { mergeRows, PipelinesStore } from "./pipelines_store.ts";
import { modelRow } from "./_model_row.ts";

function row(id: string, takenAt: number, over: Partial<ModelRow> = {}): ModelRow {
  return modelRow({ id, name: id, actions: ["load-cpu", "pin"], takenAt, ...over });
}

Deno.test("mergeRows() - a row replaces its model's unless taken earlier; new models go last", () => {
  const held = mergeRows([], [row("a", 10), row("b", 10)], 1);
  const next = mergeRows(held, [row("b", 20, { state: "cpu" }), row("a", 5, { state: "gpu" })], 2);
  assert.deepEqual(next.map((h) => [h.row.id, h.row.state, h.receivedAt]), [
    ["a", "unloaded", 1],
    ["b", "cpu", 2],
  ]);
  const grown = mergeRows(next, [row("c", 30)], 3);
  assert.deepEqual(grown.map((h) => h.row.id), ["a", "b", "c"], "catalog order kept");
  assert.equal(mergeRows(grown, [row("a", 1)], 4), grown, "nothing newer: the same rows");
});

Deno.test("PipelinesStore - follows the live reports; a snapshot older than an action's answer cannot undo it", async () => {
  const realFetch = globalThis.fetch;
  let answer = row("vad", 200, { state: "cpu", placement: "cpu", pinned: true });
  let release = () => {};
  globalThis.fetch = async () => {
    await new Promise<void>((resolve) => release = resolve);
    return Response.json(answer);
  };
  const live = signal<VramReport | null>(null);
  const store = new PipelinesStore([row("vad", 100)], 0);
  const stop = store.follow(live);
  try {
    const report = (models: ModelRow[]): VramReport => ({
      source: "none",
      reason: null,
      driverVersion: null,
      devices: [],
      models,
      takenAt: 0,
    });
    const acting = store.act("vad", "pin");
    assert.equal(store.busy.value.vad, "Pinning", "the row says what it does meanwhile");
    release();
    await acting;
    assert.deepEqual(store.busy.value, {});
    assert.equal(store.rows.value[0].row.pinned, true);
    live.value = report([row("vad", 150)]); // left before the answer
    assert.equal(store.rows.value[0].row.pinned, true, "the older snapshot is ignored");
    live.value = report([row("vad", 300, { state: "gpu", placement: "gpu", pinned: true })]);
    assert.equal(store.rows.value[0].row.state, "gpu", "a newer snapshot is taken");

    answer = row("vad", 0);
    globalThis.fetch = () =>
      Promise.resolve(
        Response.json({ error: { code: "no_gpu", message: "No GPU is usable" } }, { status: 409 }),
      );
    await store.act("vad", "load-gpu");
    assert.equal(store.errors.value.vad, "Loading on the GPU failed: No GPU is usable");
    assert.equal(store.rows.value[0].row.state, "gpu", "a failed action leaves the row as it was");
  } finally {
    stop();
    globalThis.fetch = realFetch;
  }
});

Deno.test("PipelinesStore - without rows from the page it fetches them, and says why it could not", async () => {
  const realFetch = globalThis.fetch;
  const store = new PipelinesStore(null);
  assert.equal(store.fetchState.value.kind, "loading");
  try {
    globalThis.fetch = () => Promise.reject(new TypeError("connection refused"));
    await store.fetch();
    assert.deepEqual(store.fetchState.value, {
      kind: "error",
      message: "the service does not answer (connection refused)",
    });
    globalThis.fetch = () => Promise.resolve(Response.json({ models: [row("a", 1), row("b", 1)] }));
    await store.fetch();
    assert.equal(store.fetchState.value.kind, "ok");
    assert.deepEqual(store.rows.value.map((h) => h.row.id), ["a", "b"]);
  } finally {
    globalThis.fetch = realFetch;
  }
});
