/**
 * A scheduler over the real PipelineManager (worker doubles) whose device is the NVIDIA
 * driver double read through NVML by the real VramMonitor and the service's device view:
 * the pipelines' bytes show in the double's used memory at once on a load and
 * `freeDelayMs` late on a release, as a real driver may.
 */
import { EventLog } from "../core/events.ts";
import { Scheduler } from "../core/placement/scheduler.ts";
import { VramMonitor } from "../core/monitor/vram_monitor.ts";
import { NvmlSource } from "../core/monitor/nvml_source.ts";
import { openNvml } from "../ffi/nvml.ts";
import { deviceView } from "../server/service.ts";
import { MiB, type SimPipelineSpec } from "./_sim_gpu.ts";
import { DoubleGpu } from "./_worker_double.ts";
import { FakeGpu } from "./fake_gpu.ts";

/**
 * The driver double as the device: our pipelines' bytes show in its used figure at once on
 * a load, and `freeDelayMs` late on a release; the monitor reads it through NVML.
 */
export function onDriverDouble(
  pipelines: SimPipelineSpec[],
  freeDelayMs: number,
  options: { onInsufficientVram?: "cpu" | "reject"; releasePollMs?: number } = {},
) {
  const fake = new FakeGpu({ isolate: true });
  fake.setTotal(0, 1024 * MiB);
  const double = new DoubleGpu({
    totalBytes: 1024 ** 4, // the double's own device view is not used here
    pipelines: pipelines.map((p) => ({ ...p, placement: "none" as const })),
  });
  let tenant = 0;
  let shown = 0;
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const show = () => fake.setOtherUsed(0, tenant + shown);
  // Follow the host's tracked bytes into the double: up at once, down late.
  const follow = () => {
    const now = double.host.trackedBytes();
    if (now >= shown) {
      shown = now;
      show();
    } else {
      const timer = setTimeout(() => {
        timers.delete(timer);
        shown = double.host.trackedBytes();
        show();
      }, freeDelayMs);
      timers.add(timer);
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
    sampleMs: 10,
    activeBytes: () => double.host.trackedBytes(),
  });
  const events = new EventLog(1000);
  const scheduler = new Scheduler({
    host: double.host,
    device: deviceView(monitor, double.host),
    events,
    budgetFor: (total) => total,
    headroomBytes: 100 * MiB,
    footprint: (id) => double.footprint(id),
    onInsufficientVram: options.onInsufficientVram ?? "cpu",
    releasePollMs: options.releasePollMs ?? 5,
  });
  return {
    fake,
    double,
    monitor,
    scheduler,
    events,
    setTenant(bytes: number) {
      tenant = bytes;
      show();
    },
    close() {
      for (const timer of timers) clearTimeout(timer);
      scheduler.close();
      monitor.stop();
      double.host.close();
      fake.close();
    },
  };
}
