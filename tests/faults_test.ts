// Fault injection: pipeline workers killed mid-request or crashing on their own, and the
// NVIDIA driver misbehaving through the test double (GPU lost for seconds, cudaMalloc
// failing, a driver without nvmlDeviceGetMemoryInfo_v2, a flaky memory query). The
// service must stay up, answer each affected request with a JSON error, recover by
// itself, and leave every other pipeline as it was.
import assert from "node:assert/strict";
import { startService } from "../server/service.ts";
import type { ModelRow, VramReport } from "../core/types.ts";
import { CudaError, openCudart } from "../ffi/cudart.ts";
import { NVML_ERROR } from "../ffi/nvml.ts";
import { startOnFakeGpu, testConfig } from "./_service.ts";
import { FAKE_GPU_NOV2_PATH, FakeGpu, GiB } from "./fake_gpu.ts";
import {
  delay,
  jsonPost,
  watchUnhandledRejections,
  writeArtifact,
  writeModelsFile,
} from "./fixtures/artifact.ts";

const PLUGIN = new URL("./fixtures/double_sum_plugin.ts", import.meta.url).pathname;

/** Polls `check` every 20 ms until it is true or `ms` pass; answers whether it became true. */
async function waitFor(check: () => boolean, ms: number): Promise<boolean> {
  const deadline = performance.now() + ms;
  while (!check()) {
    if (performance.now() > deadline) return false;
    await delay(20);
  }
  return true;
}

Deno.test("worker crash - a killed or crashing worker fails its request with 503, recovers, and leaves other pipelines alone", async () => {
  const rejections = watchUnhandledRejections();
  await using service = await startService(testConfig({
    gpu: "cpu",
    modelsFile: writeModelsFile([
      { id: "sum", source: "synthetic:64KiB", plugin: PLUGIN },
      { id: "bystander", source: "synthetic:64KiB" },
    ]),
  }));
  const { app, services } = service;
  const manager = services.scheduler;
  let sent = 0;
  const request = (path: string, body: unknown) => {
    sent++;
    return app.request(path, jsonPost(body));
  };
  const sum = (payload: unknown) => request("/api/v1/pipelines/sum/infer", { payload });

  const width = (await manager.load("sum", "cpu")).inputs[0].dims[1] as number;
  const values = Array.from({ length: width }, (_, i) => i / width);
  const bystanderLoaded = await manager.load("bystander", "cpu");
  const tensors = {
    input: {
      type: "float32",
      dims: [1, width],
      data: Array.from({ length: width }, (_, i) => Math.cos(i)),
    },
  };
  const bystander = async () => {
    const response = await request("/api/v1/pipelines/bystander/infer", { inputs: tensors });
    assert.equal(response.status, 200, await response.clone().text());
    return (await response.json()).outputs.output.data as number[];
  };
  const expected = await bystander();
  const baseline = await sum({ values });
  assert.equal(baseline.status, 200, await baseline.clone().text());
  const expectedSum = (await baseline.json()).output.sum;

  const faults: string[] = [];
  const outcomes: Record<string, number> = {};
  const count = (status: number) => outcomes[status] = (outcomes[status] ?? 0) + 1;

  // 1. Killed mid-request, with more requests queued behind the one that hangs.
  for (let round = 0; round < 3; round++) {
    const hanging = sum({ hang: true });
    const queued = Array.from({ length: 4 }, () => sum({ values }));
    // The hang is inside the worker once the pipeline's queue holds it and the rest.
    await delay(100);
    faults.push(`kill#${round}`);
    service.host.replace("sum", `killed by the fault test (round ${round})`);
    const killed = await hanging;
    count(killed.status);
    assert.equal(killed.status, 503);
    const error = (await killed.json()).error;
    assert.equal(error.code, "worker_died");
    assert.match(error.message, new RegExp(`killed by the fault test \\(round ${round}\\)`));
    assert.match(error.message, /next request starts a fresh worker/);
    for (const response of await Promise.all(queued)) {
      count(response.status);
      assert.equal(response.status, 200, "queued requests are served by a fresh worker");
      assert.equal((await response.json()).output.sum, expectedSum);
    }
    assert.equal(manager.model("sum").state, "cpu");
    assert.deepEqual(await bystander(), expected, "the other pipeline answers the same");
  }

  // 2. The plugin crashes its own worker (an uncaught exception outside any request).
  for (let round = 0; round < 3; round++) {
    faults.push(`crash#${round}`);
    const crashed = await sum({ crash: true });
    count(crashed.status);
    assert.equal(crashed.status, 503, "a worker that crashes by itself is noticed");
    const error = (await crashed.json()).error;
    assert.equal(error.code, "worker_died");
    assert.match(error.message, /crashed on purpose/);
    assert.equal(manager.model("sum").state, "failed");
    const after = await sum({ values });
    count(after.status);
    assert.equal(after.status, 200, "the next request recovers");
    assert.equal((await after.json()).output.sum, expectedSum);
    assert.deepEqual(await bystander(), expected);
  }

  // 3. Killed while idle: the state says failed, the next request recovers.
  faults.push("kill-idle");
  service.host.replace("sum", "killed while idle");
  assert.ok(await waitFor(() => manager.model("sum").state === "failed", 2000));
  const models: ModelRow[] = (await (await app.request("/api/v1/models")).json()).models;
  assert.match(models.find((m) => m.id === "sum")!.error!, /killed while idle/);
  const recovered = await sum({ values });
  count(recovered.status);
  assert.equal(recovered.status, 200);

  const other = manager.model("bystander");
  assert.equal(other.state, "cpu");
  assert.equal(other.error, null);
  assert.deepEqual(other.lastTransition, bystanderLoaded.lastTransition, "never reloaded");
  const failures = services.events.recent(200).filter((e) => e.kind === "failure");
  assert.ok(failures.every((e) => e.pipeline === "sum"));
  assert.equal(failures.length, faults.length);
  rejections.stop();
  assert.equal(rejections.count, 0);
  await writeArtifact("faults_worker_crash", {
    requestsSent: sent,
    faultsInjected: faults.length,
    faults,
    statuses: outcomes,
    errors503: outcomes[503] ?? 0,
    unexpectedErrors: Object.entries(outcomes).filter(([s]) => s !== "200" && s !== "503")
      .reduce((n, [, c]) => n + c, 0),
    bystanderChanged: false,
    unhandledRejections: rejections.count,
    dataLost: 0,
  });
});

Deno.test("driver faults - a GPU lost for 5 s: the service stays up, reads lost and degraded, then recovers", async () => {
  const rejections = watchUnhandledRejections();
  await using t = await startOnFakeGpu({ sampleMs: 100 }, (gpu) => gpu.setOtherUsed(0, GiB));
  const vram = async (): Promise<VramReport> => {
    const response = await t.request("/api/v1/hardware/vram");
    assert.equal(response.status, 200);
    return await response.json();
  };
  assert.equal((await vram()).devices[0].state, "ok");
  const statuses: Record<string, number> = {};
  let sent = 0;
  const lostAt = performance.now();
  t.gpu.setLost(0, true);
  let sawLost = 0;
  let sawDegraded = 0;
  const reads = ["/metrics", "/api/v1/models", "/api/v1/hardware/vram/history?points=10", "/"];
  while (performance.now() - lostAt < 5000) {
    await delay(100);
    const report = await vram();
    const health = await (await t.request("/api/v1/health")).json();
    sent += 2;
    if (performance.now() - lostAt > 300) {
      assert.equal(report.devices[0].state, "lost");
      assert.match(report.devices[0].error!, /NVML_ERROR_GPU_IS_LOST/);
      assert.equal(report.devices[0].totalBytes, 8 * GiB, "the last known figures stay");
      assert.equal(health.status, "degraded");
    }
    if (report.devices[0].state === "lost") sawLost++;
    if (health.status === "degraded") sawDegraded++;
    for (const path of reads) {
      const response = await t.request(path);
      sent++;
      statuses[response.status] = (statuses[response.status] ?? 0) + 1;
      assert.ok(response.status < 500, `${path} answered ${response.status} while lost`);
      await response.body?.cancel();
    }
  }
  t.gpu.setLost(0, false);
  const backAt = performance.now();
  assert.ok(
    await waitFor(() => t.service.services.monitor.current().devices[0].state === "ok", 2000),
  );
  const recoveryMs = performance.now() - backAt;
  const report = await vram();
  assert.equal(report.devices[0].state, "ok");
  assert.equal(report.devices[0].error ?? null, null);
  assert.equal(report.devices[0].usedBytes, GiB);
  assert.equal((await (await t.request("/api/v1/health")).json()).status, "ok");
  rejections.stop();
  assert.equal(rejections.count, 0);
  assert.ok(sawLost > 30 && sawDegraded > 30, `lost ${sawLost}, degraded ${sawDegraded}`);
  await writeArtifact("faults_gpu_lost", {
    lostForMs: 5000,
    requestsSent: sent,
    faultsInjected: 1,
    statuses,
    errors5xx: Object.entries(statuses).filter(([s]) => Number(s) >= 500).length,
    readingsLost: sawLost,
    readingsDegraded: sawDegraded,
    recoveryMs: Math.round(recoveryMs),
    unhandledRejections: rejections.count,
  });
});

Deno.test("driver faults - cudaMalloc failing gives a CudaError, the process and the service carry on", async () => {
  await using t = await startOnFakeGpu({ sampleMs: 60_000 });
  const cuda = openCudart(t.gpu.path);
  try {
    const injected = 5;
    let errors = 0;
    for (let i = 0; i < injected; i++) {
      t.gpu.failNext("cudaMalloc", 2);
      assert.throws(() => cuda.malloc(GiB), (error: unknown) => {
        assert.ok(error instanceof CudaError);
        assert.equal(error.code, 2);
        assert.equal(error.fn, "cudaMalloc");
        assert.equal(error.cudaName, "cudaErrorMemoryAllocation");
        errors++;
        return true;
      });
      assert.equal(t.gpu.allocated(0), 0, "a failed allocation holds nothing");
    }
    const pointer = cuda.malloc(GiB);
    assert.equal(t.gpu.allocated(0), GiB);
    t.service.services.monitor.sample();
    const report: VramReport = await (await t.request("/api/v1/hardware/vram")).json();
    assert.equal(report.devices[0].usedBytes, GiB, "the service sees the allocation");
    assert.equal(report.devices[0].state, "ok");
    cuda.free(pointer);
    assert.equal(t.gpu.allocated(0), 0);
    await writeArtifact("faults_cuda_malloc", {
      faultsInjected: injected,
      cudaErrors: errors,
      allocationsAfter: 1,
      crashes: 0,
    });
  } finally {
    cuda.close();
  }
});

Deno.test("driver faults - a driver without nvmlDeviceGetMemoryInfo_v2: memory is read through v1", async () => {
  const gpu = new FakeGpu({ isolate: true, path: FAKE_GPU_NOV2_PATH });
  try {
    gpu.setOtherUsed(0, 3 * GiB);
    await using service = await startService(
      testConfig({ nvmlLibrary: gpu.path, sampleMs: 60_000 }),
    );
    const report: VramReport = await (await service.app.request("/api/v1/hardware/vram")).json();
    assert.equal(report.source, "nvml");
    assert.equal(report.devices[0].state, "ok");
    assert.equal(report.devices[0].totalBytes, 8 * GiB);
    assert.equal(report.devices[0].usedBytes, 3 * GiB);
    assert.ok(gpu.callCount("nvmlDeviceGetMemoryInfo") > 0, "the v1 query was used");
    gpu.setOtherUsed(0, 5 * GiB);
    service.services.monitor.sample();
    const after: VramReport = await (await service.app.request("/api/v1/hardware/vram")).json();
    assert.equal(after.devices[0].usedBytes, 5 * GiB);
    assert.equal((await (await service.app.request("/api/v1/health")).json()).status, "ok");
  } finally {
    gpu.close();
  }
});

Deno.test("driver faults - a flaky nvmlDeviceGetMemoryInfo_v2 (UNKNOWN) reads as a passing error, not lost, then fine", async () => {
  const rejections = watchUnhandledRejections();
  await using t = await startOnFakeGpu({ sampleMs: 60_000 }, (gpu) => gpu.setOtherUsed(0, GiB));
  const { monitor } = t.service.services;
  const failures = 3;
  t.gpu.failTimes("nvmlDeviceGetMemoryInfo_v2", NVML_ERROR.UNKNOWN, failures);
  for (let i = 0; i < failures; i++) {
    const device = monitor.sample().devices[0];
    // UNKNOWN is not "the GPU is gone" (isGpuLost): the last good figures stay, not lost.
    assert.equal(device.state, "error");
    assert.match(device.error!, /NVML_ERROR_UNKNOWN/);
    const report: VramReport = await (await t.request("/api/v1/hardware/vram")).json();
    assert.equal(report.devices[0].state, "error");
    assert.equal(report.devices[0].usedBytes, GiB, "the last known figures stay");
    assert.equal((await (await t.request("/api/v1/health")).json()).status, "ok");
  }
  assert.equal(monitor.sample().devices[0].state, "ok");
  assert.equal((await (await t.request("/api/v1/health")).json()).status, "ok");

  // The same through the sampler: a burst of failures shows, then clears by itself.
  await using fast = await startOnFakeGpu({ sampleMs: 50 }, (gpu) => gpu.setOtherUsed(0, GiB));
  const states: string[] = [];
  const unsubscribe = fast.service.services.monitor.subscribe((sample) =>
    states.push(sample.devices[0].state)
  );
  fast.gpu.failTimes("nvmlDeviceGetMemoryInfo_v2", NVML_ERROR.UNKNOWN, 4);
  const cleared = await waitFor(() => states.includes("error") && states.at(-1) === "ok", 3000);
  unsubscribe();
  assert.ok(cleared, `states seen: ${states.join(", ")}`);
  assert.equal((await (await fast.request("/api/v1/health")).json()).status, "ok");
  rejections.stop();
  assert.equal(rejections.count, 0);
  await writeArtifact("faults_nvml_flaky", {
    faultsInjected: failures + 4,
    errorReadings: failures + states.filter((s) => s === "error").length,
    recovered: true,
    unhandledRejections: rejections.count,
  });
});
