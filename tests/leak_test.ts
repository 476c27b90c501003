// Confirmed release: after an offload, a pipeline's tracked bytes must be zero and (with a
// driver that reports used bytes) the device's used bytes must fall by about as much; if
// not, a leak is flagged on the pipeline and logged. Real webgpu workers on the software
// adapter; the "driver" figure is scripted so both outcomes can be seen.
import assert from "node:assert/strict";
import { EventLog } from "../core/events.ts";
import { loadCatalog } from "../core/models/catalog.ts";
import { PipelineManager } from "../core/pipelines/manager.ts";
import { findAdapter } from "../core/monitor/webgpu_source.ts";

const adapter = await findAdapter().catch(() => null);

async function managerWith(deviceUsed: (manager: PipelineManager) => number) {
  const dir = Deno.makeTempDirSync({ prefix: "headroom-leak-" });
  Deno.writeTextFileSync(
    `${dir}/models.json`,
    JSON.stringify({ models: [{ id: "big", source: "synthetic:17MiB" }] }),
  );
  const events = new EventLog();
  const catalog = await loadCatalog(`${dir}/models.json`, dir);
  const manager: PipelineManager = new PipelineManager({
    catalog,
    events,
    gpuAvailable: true,
    deviceUsedBytes: () => deviceUsed(manager),
    releaseWaitMs: 300,
    parityTolerance: null,
  });
  return { manager, events };
}

async function settle(ms: number) {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

Deno.test({
  name: "confirmed release - device used that does not fall after an offload flags a leak",
  ignore: !adapter,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    // A driver that sees the memory arrive with the load, and never come back.
    let held = 0;
    const { manager, events } = await managerWith((m) => {
      held = Math.max(held, m.trackedBytes());
      return 5 * 2 ** 30 + held;
    });
    try {
      const loaded = await manager.load("big", "gpu");
      assert.ok(loaded.gpuBytes >= 16 * 2 ** 20, `tracked ${loaded.gpuBytes}`);
      const offloaded = await manager.offload("big");
      assert.equal(offloaded.gpuBytes, 0, "tracked bytes are zero after the offload");
      await settle(600);
      const leak = manager.get("big").leak;
      assert.match(
        leak ?? "",
        /device used fell by 0 bytes within 300 ms of the offload, expected about \d+/,
      );
      assert.ok(held >= 16 * 2 ** 20, "the driver saw the load");
      assert.equal(manager.placements()[0].leak, leak, "the API's placement shows it too");
      assert.equal(events.recent(50).filter((e) => e.kind === "leak").length, 1);
    } finally {
      manager.close();
    }
  },
});

Deno.test({
  name: "confirmed release - device used that falls by the released bytes flags nothing",
  ignore: !adapter,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    // A driver that sees the memory arrive with the load, and come back a little after
    // the offload, within the wait.
    let shown = 0;
    let releasing = false;
    const { manager, events } = await managerWith((m) => {
      if (!releasing) shown = m.trackedBytes();
      return 5 * 2 ** 30 + shown;
    });
    try {
      const tracked = (await manager.load("big", "gpu")).gpuBytes;
      assert.equal(shown, tracked, "the driver saw the load");
      releasing = true;
      const offload = manager.offload("big");
      setTimeout(() => shown = 0, 100);
      await offload;
      await settle(600);
      assert.equal(manager.get("big").leak, null);
      assert.equal(events.recent(50).filter((e) => e.kind === "leak").length, 0);
    } finally {
      manager.close();
    }
  },
});

Deno.test({
  name:
    "confirmed release - a driver that never saw the bytes arrive (software adapter, test double) flags no leak",
  ignore: !adapter,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    // The sessions run on the software adapter: the NVIDIA driver (or its double) never
    // sees their memory, before or after. Before, every such offload was a false LEAK.
    const { manager, events } = await managerWith(() => 5 * 2 ** 30);
    try {
      const loaded = await manager.load("big", "gpu");
      assert.ok(loaded.gpuBytes >= 16 * 2 ** 20);
      assert.equal(loaded.lastTransition?.deviceUsedDeltaBytes, 0);
      await manager.offload("big");
      await settle(600);
      assert.equal(manager.get("big").leak, null);
      assert.equal(events.recent(50).filter((e) => e.kind === "leak").length, 0);
    } finally {
      manager.close();
    }
  },
});
