// The VRAM report feed: one build per change (a new sample, a new event), shared by
// GET /api/v1/hardware/vram, each SSE snapshot, the page and /metrics; reused while
// nothing changed and for at most REPORT_REUSE_MS, on an injected clock.
import assert from "node:assert/strict";
import { EventLog } from "../core/events.ts";
import type { VramSample } from "../core/types.ts";
import { REPORT_REUSE_MS, ReportFeed, type ReportSources } from "../server/report.ts";
import { FakeClock } from "./_fake_clock.ts";
import { readSse, startOnFakeGpu } from "./_service.ts";

/** Report sources whose sample the test replaces, with a count of the scheduler's reads. */
function sources() {
  let sample: VramSample = { takenAt: 1, devices: [] };
  const events = new EventLog();
  let reads = 0;
  const parts: ReportSources = {
    monitor: {
      current: () => sample,
      sourceKind: "none",
      reason: "test",
      source: { driverVersion: null } as ReportSources["monitor"]["source"],
    },
    scheduler: {
      list: () => {
        reads++;
        return [];
      },
      status: () => ({
        budgetBytes: 0,
        headroomBytes: 0,
        availableBytes: 0,
        onInsufficientVram: "cpu",
        mode: "shared",
        releasingBytes: 0,
        section: null,
        pipelines: [],
      }),
    },
    events,
    cpuEngine: null,
  };
  return {
    parts,
    events,
    reads: () => reads,
    newSample: () => (sample = { takenAt: sample.takenAt, devices: [] }),
  };
}

Deno.test("report feed - one build per change: same sample and events reuse it, a change rebuilds", () => {
  const clock = new FakeClock();
  const s = sources();
  const feed = new ReportFeed(s.parts, clock.now);
  const first = feed.current();
  assert.equal(first.build, 1);
  assert.equal(feed.current(), first, "a second read within one sample is the same build");
  assert.equal(first.json, feed.current().json);
  assert.equal(s.reads(), 1, "the scheduler was asked once");
  // A new sample, even taken in the same millisecond, is a change.
  s.newSample();
  const second = feed.current();
  assert.notEqual(second, first);
  assert.equal(second.build, 2);
  // A new event (every placement change emits one) is a change.
  s.events.emit({ kind: "info", pipeline: null, message: "changed" });
  const third = feed.current();
  assert.equal(third.build, 3);
  assert.equal(third.report.events?.[0]?.message, "changed");
  // Nothing changed, but idle times move: rebuilt once the build is REPORT_REUSE_MS old.
  clock.advance(REPORT_REUSE_MS - 1);
  assert.equal(feed.current(), third);
  clock.advance(1);
  assert.equal(feed.current().build, 4);
  assert.equal(feed.builds, 4);
});

Deno.test("report feed - GET, the SSE snapshot and /metrics share one build until a change", async () => {
  // A long sampling interval: no new sample arrives unless the test takes one.
  await using t = await startOnFakeGpu({ gpu: "cpu", sampleMs: 60_000 });
  const { services } = t.service;
  const clock = new FakeClock();
  services.reports = new ReportFeed(services, clock.now);
  const feed = services.reports;

  const first = await (await t.request("/api/v1/hardware/vram")).text();
  const second = await (await t.request("/api/v1/hardware/vram")).text();
  assert.equal(feed.builds, 1, "two GETs within one sample: one build");
  assert.equal(second, first);

  const controller = new AbortController();
  const stream = await t.request("/api/v1/hardware/vram/stream", { signal: controller.signal });
  const events = readSse(stream);
  const snapshot = (await events.next()).value!;
  assert.equal(snapshot.event, "snapshot");
  assert.equal(snapshot.data, first, "the SSE snapshot is the GET body, byte for byte");
  const metrics = await (await t.request("/metrics", { headers: { accept: "application/json" } }))
    .json();
  assert.deepEqual(metrics.devices, JSON.parse(first).devices);
  assert.equal(metrics.takenAt, JSON.parse(first).takenAt);
  await (await t.request("/metrics")).text();
  assert.equal(feed.builds, 1, "the stream and /metrics used the same build");

  // A change: a new event. The next GET and the stream's next snapshot carry one new build.
  services.events.emit({ kind: "info", pipeline: null, message: "a change" });
  const next = (await events.next()).value!;
  assert.equal(JSON.parse(next.data).events[0].message, "a change");
  const third = await (await t.request("/api/v1/hardware/vram")).text();
  assert.equal(third, next.data);
  assert.equal(feed.builds, 2);
  // A new sample is a change too.
  services.monitor.sample();
  await t.request("/metrics").then((r) => r.text());
  assert.equal(feed.builds, 3);
  controller.abort();
  await events.return(undefined);
});
