/**
 * Device errors: only the driver's "GPU is gone" codes (isGpuLost) make a device lost;
 * any other error keeps the last good figures and evicts nothing; while a device is lost
 * nothing is evicted and new GPU placements go to the CPU (or are refused, per config);
 * recovery resumes. The process list is optional: an old driver without its symbol
 * leaves `reserved` unknown, not the device lost.
 */
import assert from "node:assert/strict";
import { writeArtifact } from "./fixtures/artifact.ts";
import { EventLog } from "../core/events.ts";
import { PipelineError } from "../core/pipelines/pipeline_error.ts";
import { NvmlSource } from "../core/monitor/nvml_source.ts";
import { NVML_ERROR, openNvml } from "../ffi/nvml.ts";
import { FakeClock, MiB, schedulerOnSim, SimGpu, type SimPipelineSpec } from "./_sim_gpu.ts";
import { onDriverDouble } from "./_driver_double.ts";
import { FAKE_GPU_NOV2_PATH, FakeGpu } from "./fake_gpu.ts";

const LOADED: SimPipelineSpec[] = [
  { id: "a", gpuBytes: 100 * MiB, placement: "gpu" },
  { id: "b", gpuBytes: 100 * MiB, placement: "gpu" },
  { id: "x", gpuBytes: 100 * MiB },
];

function world(onInsufficientVram: "cpu" | "reject" = "cpu") {
  const clock = new FakeClock();
  const sim = new SimGpu({ totalBytes: 1000 * MiB, pipelines: LOADED, clock });
  const events = new EventLog(1000);
  const scheduler = schedulerOnSim(sim, { events, headroomBytes: 100 * MiB, onInsufficientVram });
  const onGpu = () => sim.ids().filter((id) => sim.placementOf(id) === "gpu");
  return { sim, scheduler, events, onGpu };
}

Deno.test("device errors - a passing driver error (stale figures) evicts nothing, even short of the headroom", async () => {
  const { sim, scheduler, onGpu } = world();
  sim.read("fresh"); // a good reading to keep
  sim.deviceState = "error";
  sim.otherTenantBytes = 750 * MiB; // would be 50 MiB short of the headroom
  assert.equal(await scheduler.enforceHeadroom(), 0);
  assert.deepEqual(onGpu(), ["a", "b"]);
  sim.deviceState = "ok"; // the driver answers again: the pass resumes
  assert.equal(await scheduler.enforceHeadroom(), 1);
});

Deno.test("device errors - while the device is lost nothing is evicted and a new GPU placement goes to the CPU, saying why", async () => {
  const { sim, scheduler, events, onGpu } = world();
  sim.read("fresh");
  sim.deviceState = "lost";
  sim.otherTenantBytes = 900 * MiB;
  assert.equal(await scheduler.enforceHeadroom(), 0);
  assert.equal(scheduler.gpuUsable(), false);
  assert.equal(await scheduler.place("x"), "cpu");
  assert.deepEqual(onGpu(), ["a", "b"], "nothing moved");
  assert.match(
    events.recent(1)[0].message,
    /^x serves on the CPU: the GPU is lost \(simulated lost\)$/,
  );
  sim.deviceState = "ok";
  sim.otherTenantBytes = 0;
  assert.equal(await scheduler.place("x"), "gpu", "placements resume after recovery");
});

Deno.test("device errors - a lost device with HEADROOM_ON_INSUFFICIENT_VRAM=reject refuses GPU placements with 503 and Retry-After", async () => {
  const { sim, scheduler } = world("reject");
  sim.read("fresh");
  sim.deviceState = "lost";
  await assert.rejects(() => scheduler.place("x"), (error: unknown) => {
    assert.ok(error instanceof PipelineError);
    assert.equal(error.code, "gpu_lost");
    assert.equal(error.retryAfterSeconds, 5);
    return true;
  });
  assert.equal(sim.placementOf("x"), "none");
});

Deno.test("device errors - on the NVIDIA driver double, NVML_ERROR_UNKNOWN with pipelines loaded: the device reads error, not lost, and nothing moves", async () => {
  const t = onDriverDouble(LOADED, 0);
  try {
    await t.scheduler.load("a", "gpu");
    await t.scheduler.load("b", "gpu");
    const states = new Set<string>();
    const passes: Promise<number>[] = [];
    t.monitor.subscribe((sample) => {
      states.add(sample.devices[0].state);
      passes.push(t.scheduler.enforceHeadroom());
    });
    t.fake.failTimes("nvmlDeviceGetMemoryInfo_v2", NVML_ERROR.UNKNOWN, 1_000_000);
    await t.sample(15); // 150 ms of the monitor's samples

    assert.ok(states.has("error"), [...states].join(", "));
    assert.ok(!states.has("lost"), "UNKNOWN is not a lost GPU");
    assert.deepEqual(await Promise.all(passes), passes.map(() => 0));
    assert.equal(t.double.placementOf("a"), "gpu");
    assert.equal(t.double.placementOf("b"), "gpu");
    assert.equal(t.events.recent(100).filter((e) => e.kind === "eviction").length, 0);
    await writeArtifact("device_errors_unknown", {
      moves: t.events.recent(100).filter((e) => e.kind === "eviction").length,
      samples: t.monitor.queries,
      headroomPasses: passes.length,
    });
  } finally {
    t.close();
  }
});

Deno.test("device errors - an old driver without nvmlDeviceGetComputeRunningProcesses_v3: reserved unknown, device ok", () => {
  const gpu = new FakeGpu({ isolate: true, path: FAKE_GPU_NOV2_PATH });
  try {
    const nvml = openNvml(gpu.path);
    assert.throws(() => nvml.device(0).computeProcesses(), /FUNCTION_NOT_FOUND/);
    const source = new NvmlSource(nvml);
    const [result] = source.read();
    assert.ok(result.ok, JSON.stringify(result));
    assert.equal(result.reading.reservedBytes, 0);
    assert.match(
      result.reading.reservedUnknown ?? "",
      /^process list unavailable \(NVML_ERROR_FUNCTION_NOT_FOUND/,
    );
    source.close();
  } finally {
    gpu.close();
  }
});
