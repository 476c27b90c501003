import assert from "node:assert/strict";
import type { MemoryProfile, ModelReport } from "../core/types.ts";
import { type Activity, applyMeasurement, applySnapshot, rowView } from "./pipeline_view.ts";

const NOW = 1_800_000_000_000;

function model(over: Partial<ModelReport> = {}): ModelReport {
  return {
    id: "m",
    name: "m",
    tags: [],
    plugin: false,
    state: "unloaded",
    placement: "none",
    gpuBytes: 0,
    gpuBuffers: 0,
    gpuPeakBytes: 0,
    rssBytes: 0,
    ramBytes: 0,
    engine: null,
    modelBytes: null,
    error: null,
    lastTransition: null,
    gpuMismatch: null,
    lastUsedAt: null,
    display: "never",
    gpuProfile: null,
    cpuProfile: null,
    leak: null,
    pinned: false,
    inputs: [],
    outputs: [],
    ...over,
  };
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

const activity = (over: Partial<Activity> = {}): Activity => ({
  id: "m",
  activeCount: 0,
  pinned: false,
  lastUsedAt: NOW - 30_000,
  idleMs: 30_000,
  keepAliveDeadline: null,
  idleAction: "offload",
  ...over,
});

Deno.test("rowView() - never loaded: hollow dot and — everywhere", () => {
  const view = rowView(model(), undefined, NOW, NOW);
  assert.equal(view.indicator, "unloaded");
  for (const figure of [view.vram, view.ram, view.loadTime]) {
    assert.deepEqual([figure.text, figure.kind], ["—", "none"]);
  }
  assert.equal(view.idle, "—");
});

Deno.test("rowView() - unloaded after a load: last-known figures", () => {
  const view = rowView(
    model({ gpuProfile: profile("gpu"), display: "unloaded" }),
    undefined,
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
  const onGpu = model({
    state: "gpu",
    placement: "gpu",
    gpuBytes: 2 * 2 ** 20,
    gpuProfile: profile("gpu"),
  });
  const idle = rowView(onGpu, activity(), NOW - 5000, NOW);
  assert.equal(idle.indicator, "idle");
  assert.equal(idle.idle, "35 s");
  assert.deepEqual([idle.vram.text, idle.vram.kind], ["2.00 MiB", "live"]);
  const busy = rowView(onGpu, activity({ activeCount: 1 }), NOW, NOW);
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
    activity({ lastUsedAt: 0, idleMs: 0 }),
    NOW,
    NOW,
  );
  assert.equal(view.indicator, "cpu");
  assert.equal(view.idle, "unused");
  assert.equal(view.engine, "native");
  assert.deepEqual([view.ram.text, view.ram.kind], ["3.00 GiB", "live"], "what the session holds");
  assert.match(view.ram.title, /weights the native engine holds.*RSS is 4\.00 GiB/);
});

Deno.test("applySnapshot() takes the live state; applyMeasurement() the test load's figures", () => {
  const held = model();
  const live = applySnapshot(held, {
    id: "m",
    state: "gpu",
    placement: "gpu",
    gpuBytes: 10,
    gpuBuffers: 1,
    error: null,
    pinned: true,
    leak: null,
    gpuMismatch: true,
    engine: "webgpu",
    ramBytes: 5,
  });
  assert.deepEqual([live.state, live.gpuBytes, live.pinned], ["gpu", 10, true]);
  assert.ok(live.gpuMismatch && Number.isNaN(live.gpuMismatch.maxAbsError));
  const measured = applyMeasurement(held, {
    model: "m",
    device: "cpu",
    placement: "cpu",
    vramBytes: 0,
    trackedBytes: 0,
    ramBytes: 7 * 2 ** 20,
    rssDeltaBytes: -3,
    rssBytes: 400 * 2 ** 20,
    engine: "native",
    ms: 420,
    vramBasis: "tracked",
  }, NOW);
  const view = rowView(measured, undefined, NOW, NOW);
  assert.deepEqual([view.ram.text, view.loadTime.text, view.ram.kind], [
    "7.00 MiB",
    "420 ms",
    "last",
  ]);
});

Deno.test("rowView() - keep-alive countdown on an idle loaded model; none while it serves", () => {
  const loaded = model({ state: "gpu", placement: "gpu" });
  const counting = rowView(
    loaded,
    activity({ keepAliveDeadline: NOW + 4 * 60_000, idleAction: "offload" }),
    NOW,
    NOW,
  );
  assert.equal(counting.keepAlive, "offload in 4 min");
  const unloading = rowView(
    loaded,
    activity({ keepAliveDeadline: NOW + 30_000, idleAction: "unload" }),
    NOW,
    NOW,
  );
  assert.equal(unloading.keepAlive, "unload in 30 s");
  const serving = rowView(
    loaded,
    activity({ keepAliveDeadline: NOW + 30_000, activeCount: 1 }),
    NOW,
    NOW,
  );
  assert.equal(serving.keepAlive, null);
  assert.equal(rowView(loaded, activity(), NOW, NOW).keepAlive, null, "keep-alive off");
});
