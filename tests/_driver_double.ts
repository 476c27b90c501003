/**
 * A scheduler over the real PipelineManager (worker doubles) whose device is the NVIDIA
 * driver double read through NVML by the real VramMonitor and the service's device view:
 * the pipelines' bytes show in the double's used memory, as this process's row in the
 * graphics list, at once on a load and `freeDelayMs` late on a release, as a real driver
 * may. Time is a {@link FakeClock} unless `options.clock` says otherwise: the test takes the
 * monitor's samples with `sample(n)` (one every 10 ms of the clock) instead of sleeping
 * against the sampling interval. A benchmark passes `systemClock` to time real waits.
 */
import { EventLog } from "../core/events.ts";
import { Scheduler } from "../core/placement/scheduler.ts";
import { VramMonitor } from "../core/monitor/vram_monitor.ts";
import { NvmlSource } from "../core/monitor/nvml_source.ts";
import { openNvml } from "../ffi/nvml.ts";
import { deviceView } from "../core/placement/measure.ts";
import { MiB, type SimPipelineSpec } from "./_sim_gpu.ts";
import { DoubleGpu } from "./_worker_double.ts";
import { FakeGpu } from "./fake_gpu.ts";
import { FakeClock } from "./_fake_clock.ts";
import type { Clock } from "../core/clock.ts";

/** The monitor's sampling interval on the fake clock. */
const SAMPLE_MS = 10;

/**
 * The driver double as the device: our pipelines' bytes show in its used figure at once on
 * a load, and `freeDelayMs` late on a release; the monitor reads it through NVML.
 */
export function onDriverDouble(
  pipelines: SimPipelineSpec[],
  freeDelayMs: number,
  options: { onInsufficientVram?: "cpu" | "reject"; releasePollMs?: number; clock?: Clock } = {},
) {
  const clock = options.clock ?? new FakeClock();
  const fake = new FakeGpu({ isolate: true });
  fake.setTotal(0, 1024 * MiB);
  const double = new DoubleGpu({
    totalBytes: 1024 ** 4, // the double's own device view is not used here
    pipelines: pipelines.map((p) => ({ ...p, placement: "none" as const })),
  });
  let tenant = 0;
  let shown = 0;
  // The tenant is memory outside any list; our pipelines' bytes are this process's row in
  // the graphics list, where NVIDIA's driver lists a WebGPU (Vulkan) process.
  const show = () => {
    fake.setOtherUsed(0, tenant);
    fake.setGraphicsProcess(0, Deno.pid, shown);
  };
  // Follow the host's tracked bytes into the double: up at once, down late.
  const follow = () => {
    const now = double.host.trackedBytes();
    if (now >= shown) {
      shown = now;
      show();
    } else {
      clock.setTimeout(() => {
        shown = double.host.trackedBytes();
        show();
      }, freeDelayMs);
    }
  };
  for (const method of ["load", "offload", "unload"] as const) {
    const original = double.host[method].bind(double.host) as (
      id: string,
      device?: "gpu" | "cpu",
    ) => Promise<unknown>;
    // deno-lint-ignore no-explicit-any
    (double.host as any)[method] = (id: string, device?: "gpu" | "cpu") =>
      original(id, device).finally(follow);
  }
  const monitor = new VramMonitor({
    source: new NvmlSource(openNvml(fake.path)),
    reason: null,
    sampleMs: SAMPLE_MS,
    activeBytes: () => double.host.trackedBytes(),
    clock,
  });
  const events = new EventLog(1000);
  const scheduler = new Scheduler({
    host: double.host,
    device: deviceView(monitor, double.host),
    events,
    budgetFor: (total) => total,
    headroomBytes: 100 * MiB,
    sizes: double,
    onInsufficientVram: options.onInsufficientVram ?? "cpu",
    releasePollMs: options.releasePollMs ?? 5,
    clock,
  });
  return {
    fake,
    double,
    monitor,
    scheduler,
    events,
    clock,
    /** Takes `count` samples, one every 10 ms of the clock (timers due meanwhile fire). */
    async sample(count: number): Promise<void> {
      if (!(clock instanceof FakeClock)) throw new Error("sample() needs the fake clock");
      for (let i = 0; i < count; i++) {
        await clock.tick(SAMPLE_MS);
        monitor.sample();
      }
    },
    setTenant(bytes: number) {
      tenant = bytes;
      show();
    },
    close() {
      scheduler.close();
      monitor.stop();
      double.host.close();
      fake.close();
    },
  };
}
