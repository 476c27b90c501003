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

async function managerWith(deviceUsed: () => number) {
  const dir = Deno.makeTempDirSync({ prefix: "headroom-leak-" });
  Deno.writeTextFileSync(
    `${dir}/models.json`,
    JSON.stringify({ models: [{ id: "big", source: "synthetic:17MiB" }] }),
  );
  const events = new EventLog();
  const catalog = await loadCatalog(`${dir}/models.json`, dir);
  const manager = new PipelineManager({
    catalog,
    events,
    gpuAvailable: true,
    deviceUsedBytes: deviceUsed,
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
    // A driver that never sees the memory come back.
    const { manager, events } = await managerWith(() => 5 * 2 ** 30);
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
    let used = 5 * 2 ** 30;
    let tracked = 0;
    const { manager, events } = await managerWith(() => used);
    try {
      tracked = (await manager.load("big", "gpu")).gpuBytes;
      used += tracked;
      const offload = manager.offload("big");
      // The driver shows the memory back a little later, within the wait.
      setTimeout(() => used -= tracked, 100);
      await offload;
      await settle(600);
      assert.equal(manager.get("big").leak, null);
      assert.equal(events.recent(50).filter((e) => e.kind === "leak").length, 0);
    } finally {
      manager.close();
    }
  },
});
