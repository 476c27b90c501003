import assert from "node:assert/strict";
import type { MemoryProfile, ModelRow } from "../core/types.ts";
import { modelActions } from "../core/placement/scheduler.ts";
import { actionButtons, rowView } from "./pipeline_view.ts";
import { modelRow } from "./_model_row.ts";

const NOW = 1_800_000_000_000;

function model(over: Partial<ModelRow> = {}): ModelRow {
  return modelRow({ takenAt: NOW, ...over });
}

const profile = (device: "gpu" | "cpu", over: Partial<MemoryProfile> = {}): MemoryProfile => ({
  modelId: "m",
  device,
  shape: "default",
  gpuLoadBytes: device === "gpu" ? 3 * 2 ** 20 : null,
  gpuPeakBytes: device === "gpu" ? 4 * 2 ** 20 : null,
  deviceUsedDeltaBytes: null,
  rssDeltaBytes: -70 * 2 ** 20,
  ramBytes: 50 * 2 ** 20,
  loadMs: 1234,
  offloadMs: null,
  rehydrateMs: null,
  measuredAt: NOW - 60_000,
  ...over,
});

/** A row taken at NOW whose last request was 30 s before. */
const used = (over: Partial<ModelRow> = {}): Partial<ModelRow> => ({
  lastUsedAt: NOW - 30_000,
  idleMs: 30_000,
  ...over,
});

Deno.test("rowView() - never loaded: hollow dot and — everywhere", () => {
  const view = rowView(model(), NOW, NOW);
  assert.equal(view.indicator, "unloaded");
  for (const figure of [view.vram, view.ram, view.loadTime]) {
    assert.deepEqual([figure.text, figure.kind], ["—", "none"]);
  }
  assert.equal(view.idle, "—");
});

Deno.test("rowView() - unloaded after a load: last-known figures", () => {
  const view = rowView(
    model({ gpuProfile: profile("gpu"), display: "unloaded" }),
    NOW,
    NOW,
  );
  assert.deepEqual([view.vram.text, view.vram.kind], ["4.00 MiB", "last"]);
  assert.deepEqual(
    [view.ram.text, view.loadTime.text],
    ["50.0 MiB", "1.2 s"],
    "the session's RAM, not the process's RSS change (here negative)",
  );
});

Deno.test("rowView() - on the GPU: green while serving, amber while idle, live bytes", () => {
  const onGpu = {
    state: "gpu",
    placement: "gpu",
    gpuBytes: 2 * 2 ** 20,
    gpuProfile: profile("gpu"),
  } as const;
  const idle = rowView(model({ ...onGpu, ...used() }), NOW - 5000, NOW);
  assert.equal(idle.indicator, "idle");
  assert.equal(idle.idle, "35 s", "idle when taken, plus the time since it arrived");
  assert.deepEqual([idle.vram.text, idle.vram.kind], ["2.00 MiB", "live"]);
  const busy = rowView(model({ ...onGpu, ...used({ activeCount: 1 }) }), NOW, NOW);
  assert.equal(busy.indicator, "active");
  assert.equal(busy.idle, "serving");
});

Deno.test("rowView() - on the CPU: gray; a never-used pipeline says so", () => {
  const view = rowView(
    model({
      state: "cpu",
      placement: "cpu",
      engine: "native",
      ramBytes: 3 * 2 ** 30,
      rssBytes: 4 * 2 ** 30,
      cpuProfile: profile("cpu", { rssDeltaBytes: -5 }),
    }),
    NOW,
    NOW,
  );
  assert.equal(view.indicator, "cpu");
  assert.equal(view.idle, "unused");
  assert.equal(view.engine, "native");
  assert.deepEqual([view.ram.text, view.ram.kind], ["3.00 GiB", "live"], "what the session holds");
  assert.match(view.ram.title, /weights the native engine holds.*RSS is 4\.00 GiB/);
});

Deno.test("rowView() - keep-alive countdown on an idle loaded model; none while it serves", () => {
  const loaded = { state: "gpu", placement: "gpu" } as const;
  const counting = rowView(
    model({ ...loaded, ...used({ keepAliveDeadline: NOW + 4 * 60_000, idleAction: "offload" }) }),
    NOW,
    NOW,
  );
  assert.equal(counting.keepAlive, "offload in 4 min");
  const unloading = rowView(
    model({ ...loaded, ...used({ keepAliveDeadline: NOW + 30_000, idleAction: "unload" }) }),
    NOW,
    NOW,
  );
  assert.equal(unloading.keepAlive, "unload in 30 s");
  const later = rowView(
    model({ ...loaded, ...used({ keepAliveDeadline: NOW + 30_000, idleAction: "unload" }) }),
    NOW,
    NOW + 10_000,
  );
  assert.equal(later.keepAlive, "unload in 20 s", "it counts down between rows");
  const serving = rowView(
    model({ ...loaded, ...used({ keepAliveDeadline: NOW + 30_000, activeCount: 1 }) }),
    NOW,
    NOW,
  );
  assert.equal(serving.keepAlive, null);
  assert.equal(
    rowView(model({ ...loaded, ...used() }), NOW, NOW).keepAlive,
    null,
    "keep-alive off",
  );
});

Deno.test("actionButtons() - the buttons of the server's actions, named for where the model is", () => {
  const buttons = (over: Partial<ModelRow>, gpu: boolean) => {
    const row = model(over);
    return actionButtons({ ...row, actions: modelActions(row, { gpu }) }).map((b) => b.text);
  };
  assert.deepEqual(buttons({}, true), ["Load GPU", "Load CPU", "Pin"]);
  assert.deepEqual(buttons({}, false), ["Load", "Pin"], "no GPU: one load, on the CPU");
  assert.deepEqual(buttons({ state: "cpu", placement: "cpu" }, true), ["To GPU", "Unload", "Pin"]);
  assert.deepEqual(
    buttons({
      state: "cpu",
      placement: "cpu",
      gpuMismatch: { maxAbsError: 1, tolerance: 0.01, checkedAt: NOW },
    }, true),
    ["Unload", "Pin"],
    "outputs disagree on the GPU: it stays on the CPU",
  );
  assert.deepEqual(
    buttons({ state: "gpu", placement: "gpu", pinned: true }, true),
    ["Offload", "Unload", "Unpin"],
  );
  const [toGpu] = actionButtons(model({ id: "vad", placement: "cpu", actions: ["load-gpu"] }));
  assert.deepEqual([toGpu.action, toGpu.label], ["load-gpu", "Move vad to the GPU"]);
});
