// Confirmed release on real workers: after an offload, a pipeline's tracked bytes must be
// zero and (with a driver that reports used memory and showed the load) the device's free
// bytes must rise by about as much within the wait; if not, the scheduler flags a leak on
// the pipeline and logs it. Real webgpu workers on the software adapter; the "driver"
// figure is scripted so every outcome can be seen. The scheduler's time is a FakeClock:
// the release wait runs on it, so no test sleeps against the wait or the poll interval.
import assert from "node:assert/strict";
import { EventLog } from "../core/events.ts";
import { loadCatalog } from "../core/models/catalog.ts";
import { PipelineManager } from "../workers/manager.ts";
import { Scheduler } from "../core/placement/scheduler.ts";
import { requireWebGpu } from "./_requires.ts";
import { FakeClock, settle } from "./_fake_clock.ts";

// Skipped here without an adapter; a failure under CI.
const webgpu = await requireWebGpu();

/** A scheduler whose driver reports `deviceFree(trackedBytes)` as free. */
async function schedulerWith(deviceFree: (trackedBytes: number) => number) {
  const dir = Deno.makeTempDirSync({ prefix: "headroom-leak-" });
  Deno.writeTextFileSync(
    `${dir}/models.json`,
    JSON.stringify({ models: [{ id: "big", source: "synthetic:17MiB" }] }),
  );
  const events = new EventLog();
  const clock = new FakeClock();
  const catalog = await loadCatalog(`${dir}/models.json`, dir);
  const host = new PipelineManager({ catalog, events, gpuAvailable: true, parityTolerance: null });
  let reads = 0;
  const scheduler = new Scheduler({
    host,
    device: {
      read: () => ({
        seq: ++reads,
        state: "ok",
        freeBytes: deviceFree(host.trackedBytes()),
        totalBytes: 8 * 2 ** 30,
        trackedBytes: host.trackedBytes(),
        confirmsReleases: true,
      }),
    },
    events,
    budgetFor: (total) => total,
    headroomBytes: 0,
    sizes: { fileBytes: () => 17 * 2 ** 20, measuredPeakBytes: () => null },
    onInsufficientVram: "cpu",
    releaseWaitMs: 300,
    releasePollMs: 20,
    clock,
  });
  return {
    host,
    scheduler,
    events,
    clock,
    [Symbol.asyncDispose]: async () => {
      scheduler.close();
      host.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** Resolves once the scheduler waits for a release (its poll timer is set on the clock). */
async function releaseWaitStarted(clock: FakeClock): Promise<void> {
  // The offload itself is real worker I/O: give it real time, bounded.
  const deadline = Date.now() + 60_000;
  while (clock.pending === 0) {
    if (Date.now() > deadline) {
      throw new Error("the scheduler never started waiting for the release");
    }
    await settle();
  }
}

Deno.test({
  name: "confirmed release - device free that does not rise after an offload flags a leak",
  ignore: !webgpu,
  fn: async () => {
    // A driver that sees the memory arrive and never sees it come back.
    let shown = 0;
    await using t = await schedulerWith((tracked) => {
      shown = Math.max(shown, tracked);
      return 5 * 2 ** 30 - shown;
    });
    const loaded = await t.scheduler.load("big", "gpu");
    assert.ok(loaded.gpuBytes >= 16 * 2 ** 20, `tracked ${loaded.gpuBytes}`);
    const offload = t.scheduler.offload("big");
    await releaseWaitStarted(t.clock);
    await t.clock.tick(299);
    assert.equal(
      t.events.recent(50).filter((e) => e.kind === "leak").length,
      0,
      "not before 300 ms",
    );
    await t.clock.tick(1);
    const { model, release } = await offload;
    assert.equal(model.gpuBytes, 0, "tracked bytes are zero after the offload");
    assert.equal(release.confirmed, false, "the offload answer says the release was not seen");
    assert.match(
      model.leak ?? "",
      /^device free rose by 0 bytes within 300 ms of releasing \d+ bytes$/,
    );
    assert.equal(t.scheduler.list()[0].leak, model.leak, "every row of the model shows it too");
    assert.equal(t.events.recent(50).filter((e) => e.kind === "leak").length, 1);
  },
});

Deno.test({
  name: "confirmed release - device free that rises by the released bytes flags nothing",
  ignore: !webgpu,
  fn: async () => {
    let shown = 0;
    await using t = await schedulerWith((tracked) => {
      shown = Math.max(shown, tracked);
      return 5 * 2 ** 30 - shown;
    });
    await t.scheduler.load("big", "gpu");
    const offload = t.scheduler.offload("big");
    await releaseWaitStarted(t.clock);
    // The driver shows the memory back 100 ms later, within the wait: the next poll sees it.
    await t.clock.tick(100);
    shown = 0;
    await t.clock.tick(20);
    const { model, release } = await offload;
    assert.equal(release.confirmed, true);
    assert.equal(release.ms, 120, "confirmed at the first poll after the driver showed it");
    assert.equal(model.leak, null);
    assert.equal(t.events.recent(50).filter((e) => e.kind === "leak").length, 0);
  },
});

Deno.test({
  name:
    "confirmed release - a driver that never showed the load (a software adapter beside it) is not waited for",
  ignore: !webgpu,
  fn: async () => {
    await using t = await schedulerWith(() => 5 * 2 ** 30);
    await t.scheduler.load("big", "gpu");
    const { model, release } = await t.scheduler.offload("big");
    assert.equal(release.checked, false);
    assert.equal(
      release.ms,
      0,
      "no time passed: nothing waited for a release the driver cannot show",
    );
    assert.equal(t.clock.pending, 0, "and nothing is polling for it");
    assert.equal(model.leak, null);
    assert.equal(t.events.recent(50).filter((e) => e.kind === "leak").length, 0);
  },
});
