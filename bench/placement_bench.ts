// The placement decision's cost on the production path, at 10, 100, 1,000 and 10,000
// pipelines: the Scheduler over the real PipelineManager (workers replaced by in-process
// doubles: no model runs), reading device 0 through the real VramMonitor, NvmlSource and
// the service's device view on the NVIDIA driver double. The per-request path and
// check([id]) must not grow with the number of pipelines (target ≥ 100,000 decisions/s,
// ≤ 10 µs each, at 1,000). The pure budget functions are measured beside them.
import { EventLog } from "../core/events.ts";
import { canFitChain, chooseEvictions, type GpuState } from "../core/placement/budget.ts";
import { Scheduler } from "../core/placement/scheduler.ts";
import { VramMonitor } from "../core/monitor/vram_monitor.ts";
import { NvmlSource } from "../core/monitor/nvml_source.ts";
import { deviceView } from "../core/placement/measure.ts";
import { openNvml } from "../ffi/nvml.ts";
import { GiB, MiB, type SimPipelineSpec } from "../tests/_sim_gpu.ts";
import { DoubleGpu } from "../tests/_worker_double.ts";
import { FakeGpu } from "../tests/fake_gpu.ts";
import type { RunInput } from "../core/pipelines/protocol.ts";

const SIZE = 64 * MiB;
const INPUT: RunInput = { kind: "tensors", tensors: {} };
const fake = new FakeGpu({ isolate: true });
fake.setTotal(0, 1024 * GiB);

/** A scheduler over `count` pipelines: a tenth on the GPU, a tenth on the CPU, the rest unloaded. */
async function production(count: number) {
  const pipelines: SimPipelineSpec[] = Array.from({ length: count }, (_, i) => ({
    id: `model-${String(i).padStart(5, "0")}`,
    gpuBytes: SIZE,
  }));
  const double = new DoubleGpu({ totalBytes: 1024 * GiB, pipelines });
  const monitor = new VramMonitor({
    source: new NvmlSource(openNvml(fake.path)),
    reason: null,
    activeBytes: () => double.host.trackedBytes(),
  });
  monitor.sample();
  const scheduler = new Scheduler({
    host: double.host,
    device: deviceView(monitor, double.host),
    events: new EventLog(),
    budgetFor: (total) => total,
    headroomBytes: 1.5 * GiB,
    sizes: double,
    onInsufficientVram: "cpu",
  });
  const ids = double.ids();
  const tenth = Math.max(1, Math.floor(count / 10));
  for (const id of ids.slice(0, tenth)) await scheduler.load(id, "gpu");
  for (const id of ids.slice(tenth, 2 * tenth)) await scheduler.load(id, "cpu");
  return { scheduler, onGpu: ids.slice(0, tenth), unloaded: ids.slice(2 * tenth) };
}

for (const count of [10, 100, 1_000, 10_000]) {
  const label = count.toLocaleString("en-US");
  const world = await production(count);
  let n = 0;
  Deno.bench(`scheduler - check([id]) at ${label} pipelines (production path)`, {
    group: `check-${count}`,
  }, () => {
    world.scheduler.check([world.unloaded[n++ % world.unloaded.length]]);
  });
  Deno.bench(`scheduler - place(id) of a pipeline on the GPU at ${label} pipelines`, {
    group: `place-${count}`,
  }, async () => {
    await world.scheduler.place(world.onGpu[n++ % world.onGpu.length]);
  });
  Deno.bench(
    `scheduler - run(id) on the GPU, request path incl. host queue, at ${label} pipelines`,
    {
      group: `run-${count}`,
    },
    async () => {
      await world.scheduler.run(world.onGpu[n++ % world.onGpu.length], INPUT);
    },
  );
}

// The pure budget functions on a prepared state of 1,000 pipelines (500 on the GPU).
const state: GpuState = {
  available: true,
  deviceFreeBytes: 16 * GiB,
  budgetBytes: 48 * GiB,
  headroomBytes: 1.5 * GiB,
  now: 1_000_000,
  pipelines: Array.from({ length: 1_000 }, (_, i) => ({
    id: `model-${String(i).padStart(4, "0")}`,
    placement: i % 2 === 0 ? "gpu" as const : "cpu" as const,
    gpuBytes: i % 2 === 0 ? SIZE : 0,
    lastUsedAt: 1_000 + i * 7,
    activeCount: 0,
    pinned: false,
    priority: "normal" as const,
  })),
};
const footprint = (id: string) => ({ id, fileBytes: 0, trackedBytes: null, profileBytes: SIZE });
const smallChain = [footprint("model-0001"), footprint("model-0002"), footprint("model-0003")];
const bigChain = Array.from({ length: 20 }, (_, i) => ({
  id: `big-${i}`,
  fileBytes: 0,
  trackedBytes: null,
  profileBytes: 1 * GiB,
}));

Deno.bench("placement - canFitChain(3 models) on a prepared state of 1,000 pipelines", {
  group: "parts",
}, () => {
  canFitChain(smallChain, state);
});

Deno.bench("placement - canFitChain that needs evictions (sorts 500 idle candidates)", {
  group: "parts",
}, () => {
  canFitChain(bigChain, state);
});

Deno.bench("placement - chooseEvictions for 4 GiB among 500 idle pipelines", {
  group: "parts",
}, () => {
  chooseEvictions(state, 4 * GiB, new Set());
});
