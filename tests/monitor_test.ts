import assert from "node:assert/strict";
import { downsample, VramMonitor } from "../core/monitor/vram_monitor.ts";
import type { DeviceReading, DeviceResult, VramSource } from "../core/monitor/source.ts";
import type { VramSample } from "../core/types.ts";
import { FakeClock } from "./_fake_clock.ts";

/** A source whose figures the test sets; counts its reads. */
class ScriptedSource implements VramSource {
  readonly kind = "nvml" as const;
  readonly driverVersion = "test";
  reads = 0;
  used = 1000;
  lostError: string | null = null;
  read(): DeviceResult[] {
    this.reads++;
    if (this.lostError) return [{ ok: false, index: 0, error: this.lostError, lost: true }];
    const reading: DeviceReading = {
      index: 0,
      name: "Scripted",
      uuid: "GPU-1",
      totalBytes: 10_000,
      usedBytes: this.used,
      freeBytes: 10_000 - this.used,
      reservedBytes: 0,
      utilizationPercent: 5,
      temperatureC: 40,
    };
    return [{ ok: true, reading }];
  }
  close() {}
}

function monitorWith(source: ScriptedSource, clock: FakeClock, sampleMs = 1000) {
  return new VramMonitor({
    source,
    reason: null,
    sampleMs,
    historyMs: 60_000,
    clock,
  });
}

Deno.test("VramMonitor - concurrent reads within one interval cost one query", async () => {
  const source = new ScriptedSource();
  const clock = new FakeClock(1_000_000);
  const monitor = monitorWith(source, clock);
  await Promise.all(
    Array.from({ length: 1000 }, () => Promise.resolve().then(() => monitor.current())),
  );
  assert.equal(source.reads, 1);
  clock.ms += 999;
  monitor.current();
  assert.equal(source.reads, 1);
  clock.ms += 1;
  monitor.current();
  assert.equal(source.reads, 2);
});

Deno.test("VramMonitor - subscribers hear changes only", () => {
  const source = new ScriptedSource();
  const clock = new FakeClock(0);
  const monitor = monitorWith(source, clock);
  const heard: VramSample[] = [];
  monitor.subscribe((sample) => heard.push(sample));
  monitor.sample();
  clock.ms += 1000;
  monitor.sample();
  clock.ms += 1000;
  monitor.sample();
  assert.equal(heard.length, 1, "unchanged samples must not notify");
  source.used = 2000;
  clock.ms += 1000;
  monitor.sample();
  assert.equal(heard.length, 2);
  assert.equal(heard[1].devices[0].usedBytes, 2000);
});

Deno.test("VramMonitor - a lost device keeps its last figures, says why, and recovers", () => {
  const source = new ScriptedSource();
  const clock = new FakeClock(0);
  const monitor = monitorWith(source, clock);
  monitor.sample();
  source.lostError = "NVML_ERROR_GPU_IS_LOST: GPU is lost";
  const lost = monitor.sample().devices[0];
  assert.equal(lost.state, "lost");
  assert.equal(lost.error, "NVML_ERROR_GPU_IS_LOST: GPU is lost");
  assert.equal(lost.totalBytes, 10_000);
  assert.equal(lost.name, "Scripted");
  source.lostError = null;
  const back = monitor.sample().devices[0];
  assert.equal(back.state, "ok");
  assert.equal(back.error, undefined);
});

Deno.test("VramMonitor - history is bounded by the configured duration", () => {
  const source = new ScriptedSource();
  const clock = new FakeClock(0);
  const monitor = new VramMonitor({
    source,
    reason: null,
    sampleMs: 1000,
    historyMs: 10_000,
    clock,
  });
  for (let i = 0; i < 25; i++) {
    source.used = i;
    monitor.sample();
    clock.ms += 1000;
  }
  const all = monitor.history(3600, 1000);
  assert.equal(all.length, 10);
  assert.equal(all[0].devices[0].usedBytes, 15);
  assert.equal(monitor.history(5, 1000).length, 5);
});

Deno.test("downsample - keeps at most N points and every spike of used memory", () => {
  const samples: VramSample[] = Array.from({ length: 100 }, (_, i) => ({
    takenAt: i,
    devices: [{
      index: 0,
      name: "g",
      uuid: "",
      totalBytes: 100,
      usedBytes: i === 37 ? 99 : 10,
      freeBytes: i === 37 ? 1 : 90,
      reservedBytes: 0,
      activeBytes: 0,
      utilizationPercent: null,
      temperatureC: null,
      state: "ok",
      takenAt: i,
    }],
  }));
  const reduced = downsample(samples, 10);
  assert.equal(reduced.length, 10);
  assert.equal(reduced.filter((s) => s.devices[0].usedBytes === 99).length, 1);
  assert.equal(reduced.find((s) => s.devices[0].usedBytes === 99)!.devices[0].freeBytes, 1);
  assert.deepEqual(reduced.map((s) => s.takenAt), [9, 19, 29, 39, 49, 59, 69, 79, 89, 99]);
  assert.equal(downsample(samples, 500).length, 100);
  assert.throws(() => downsample(samples, 0), /points must be at least 1/);
});

Deno.test("VramMonitor - once started it samples every interval of its clock, and stop() ends it", async () => {
  const source = new ScriptedSource();
  const clock = new FakeClock(0);
  const monitor = monitorWith(source, clock, 1000);
  const seen: number[] = [];
  monitor.subscribe((sample) => seen.push(sample.devices[0].usedBytes));
  monitor.start();
  assert.equal(source.reads, 1, "a first sample at once");
  source.used = 10;
  await clock.tick(999);
  assert.equal(source.reads, 1, "nothing before the interval");
  await clock.tick(1);
  assert.equal(source.reads, 2);
  source.used = 20;
  await clock.tick(3000);
  assert.equal(source.reads, 5, "one read per interval");
  assert.deepEqual(seen, [1000, 10, 20], "listeners hear the first sample and each change, once");
  monitor.stop();
  await clock.tick(5000);
  assert.equal(source.reads, 5, "no read after stop()");
});
