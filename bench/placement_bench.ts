// The placement policy's cost per decision with 1,000 registered pipelines: it must
// never be the bottleneck of a request (target ≥ 100,000 decisions/s, ≤ 10 µs each).
// The target is the simulated GPU of the tests (a model of the PipelineManager), so
// check() includes the target listing its 1,000 placements (an O(n) cost of the target),
// and the fast path is measured with and without the target's direct placement(id).
import { EventLog } from "../core/events.ts";
import {
  canFitChain,
  chooseEvictions,
  effectiveHeadroom,
  type GpuState,
} from "../core/placement/budget.ts";
import { VramOffloader } from "../core/placement/offloader.ts";
import { FakeClock, GiB, MiB, SimGpu, type SimPipelineSpec } from "../tests/_sim_gpu.ts";

const COUNT = 1_000;
const SIZE = 64 * MiB;
// Half the pipelines on the GPU (32 GiB), the rest on the CPU, on a 48 GiB device.
const pipelines: SimPipelineSpec[] = Array.from({ length: COUNT }, (_, i) => ({
  id: `model-${String(i).padStart(4, "0")}`,
  gpuBytes: SIZE,
  placement: i % 2 === 0 ? "gpu" : "cpu",
}));
const clock = new FakeClock();
function policyOver(sim: SimGpu): VramOffloader {
  return new VramOffloader({
    target: sim,
    device: sim,
    events: new EventLog(),
    budgetFor: (total) => total,
    headroomFor: (budget) => effectiveHeadroom(1.5 * GiB, budget),
    footprint: (id) => sim.footprint(id),
    onInsufficientVram: "cpu",
    now: clock.now,
  });
}
const sim = new SimGpu({ totalBytes: 48 * GiB, pipelines });
const offloader = policyOver(sim);
// The same over a target that only lists its placements (the PipelineManager today).
const listOnly = policyOver(new SimGpu({ totalBytes: 48 * GiB, pipelines, listOnly: true }));
// Every pipeline used once, at a distinct time: the LRU order is all different.
for (const id of sim.ids()) {
  offloader.markActive(id);
  offloader.markIdle(id);
  clock.advance(7);
}

const onGpu = sim.ids().filter((id) => sim.placementOf(id) === "gpu");
const onCpu = sim.ids().filter((id) => sim.placementOf(id) === "cpu");
const prepared: GpuState = offloader.state();
const smallChain = [sim.footprint(onCpu[0]), sim.footprint(onGpu[1]), sim.footprint(onCpu[2])];
// 500 × 64 MiB on the GPU leave 15.25 GiB above the headroom: a 20 GiB chain is 4.75 GiB
// short, and the least recently used idle pipelines (76 of them) would move.
const bigChain = Array.from(
  { length: 20 },
  (_, i) => ({ id: `big-${i}`, fileBytes: 0, trackedBytes: null, profileBytes: 1 * GiB }),
);
let n = 0;

Deno.bench("placement - offloader.check([id]) with 1,000 pipelines (fresh state each time)", {
  group: "decision",
  baseline: true,
}, () => {
  offloader.check([onCpu[n++ % onCpu.length]]);
});

Deno.bench("placement - canFitChain(3 models) on a prepared state of 1,000 pipelines", {
  group: "decision",
}, () => {
  canFitChain(smallChain, prepared);
});

Deno.bench("placement - canFitChain that needs evictions (sorts 500 idle candidates)", {
  group: "decision",
}, () => {
  canFitChain(bigChain, prepared);
});

Deno.bench("placement - ensurePlaced of a pipeline already on the GPU (fast path)", {
  group: "decision",
}, async () => {
  await offloader.ensurePlaced(onGpu[n++ % onGpu.length]);
});

Deno.bench("placement - ensurePlaced fast path, target without placement(id) (lists 1,000)", {
  group: "decision",
}, async () => {
  await listOnly.ensurePlaced(onGpu[n++ % onGpu.length]);
});

Deno.bench("placement - offloader.state() with 1,000 pipelines", { group: "parts" }, () => {
  offloader.state();
});

Deno.bench("placement - chooseEvictions for 4 GiB among 500 idle pipelines", {
  group: "parts",
}, () => {
  chooseEvictions(prepared, 4 * GiB, new Set());
});

Deno.bench("placement - target.placements() of the simulated manager (1,000 views)", {
  group: "parts",
}, () => {
  sim.placements();
});
