import assert from "node:assert/strict";
import parsePrometheus from "parse-prometheus-text-format";
import type { VramReport } from "../core/types.ts";
import { readSse, startOnFakeGpu, testConfig } from "./_service.ts";
import { startService } from "../server/service.ts";
import { GiB } from "./fake_gpu.ts";
import type { VramMonitor } from "../core/monitor/vram_monitor.ts";

/**
 * Resolves at the monitor's first sample in which device 0 is in `state` (no fixed sleep);
 * rejects after 5 s. The deadline also keeps the event loop alive: the monitor's own
 * interval timer is unref'd.
 */
function deviceState(monitor: VramMonitor, state: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const deadline = setTimeout(() => {
      stop();
      reject(new Error(`device 0 never read "${state}" within 5 s`));
    }, 5000);
    const stop = monitor.subscribe((sample) => {
      if (sample.devices[0]?.state !== state) return;
      clearTimeout(deadline);
      stop();
      resolve();
    });
  });
}

Deno.test("GET /api/v1/hardware/vram - shows the double's devices with every figure", async () => {
  await using t = await startOnFakeGpu({}, (gpu) => {
    gpu.setDeviceCount(2);
    gpu.setTotal(1, 24 * GiB);
    gpu.setName(1, "Fake GPU Big");
    gpu.setOtherUsed(0, 3 * GiB);
    gpu.setUtilization(0, 37, 12);
    gpu.setTemperature(0, 61);
    gpu.addProcess(0, Deno.pid, 512 * 2 ** 20);
  });
  const response = await t.request("/api/v1/hardware/vram");
  assert.equal(response.status, 200);
  const body: VramReport = await response.json();
  assert.equal(body.source, "nvml");
  assert.equal(body.reason, null);
  assert.equal(body.driverVersion, "580.95.05");
  assert.equal(body.devices.length, 2);
  const [first, second] = body.devices;
  assert.equal(first.totalBytes, 8 * GiB);
  assert.equal(first.usedBytes, 3 * GiB + 512 * 2 ** 20);
  assert.equal(first.freeBytes, 8 * GiB - first.usedBytes);
  assert.equal(first.reservedBytes, 512 * 2 ** 20, "this process's bytes from NVML's process list");
  assert.equal(first.activeBytes, 0);
  assert.equal(first.utilizationPercent, 37);
  assert.equal(first.temperatureC, 61);
  assert.equal(first.state, "ok");
  assert.match(first.uuid, /^GPU-/);
  assert.equal(second.name, "Fake GPU Big");
  assert.equal(second.totalBytes, 24 * GiB);
  assert.ok(Array.isArray(body.models));
  assert.equal(typeof body.takenAt, "number");
});

Deno.test("GET /api/v1/hardware/vram - a thousand concurrent clients cause one NVML query", async () => {
  await using t = await startOnFakeGpu({ sampleMs: 60_000 });
  const before = t.gpu.callCount("nvmlDeviceGetMemoryInfo_v2");
  const queriesBefore = t.service.services.monitor.queries;
  const responses = await Promise.all(
    Array.from({ length: 1000 }, () => t.request("/api/v1/hardware/vram")),
  );
  assert.ok(responses.every((r) => r.status === 200));
  await Promise.all(responses.map((r) => r.body?.cancel()));
  assert.equal(t.gpu.callCount("nvmlDeviceGetMemoryInfo_v2") - before, 0, "served from the sample");
  assert.equal(t.service.services.monitor.queries, queriesBefore);
});

Deno.test("GET /api/v1/hardware/vram - a lost GPU reads lost, keeps the service up, and recovers", async () => {
  await using t = await startOnFakeGpu({ sampleMs: 50 });
  const lost = deviceState(t.service.services.monitor, "lost");
  t.gpu.setLost(0, true);
  await lost; // the next sample on the 50 ms interval
  let body: VramReport = await (await t.request("/api/v1/hardware/vram")).json();
  assert.equal(body.devices[0].state, "lost");
  assert.match(body.devices[0].error!, /NVML_ERROR_GPU_IS_LOST/);
  assert.equal(body.devices[0].totalBytes, 8 * GiB, "the last known figures stay");
  const health = await (await t.request("/api/v1/health")).json();
  assert.equal(health.status, "degraded");
  const metrics = await (await t.request("/metrics")).text();
  assert.match(metrics, /headroom_gpu_up\{gpu="0",[^}]*\} 0/);
  const back = deviceState(t.service.services.monitor, "ok");
  t.gpu.setLost(0, false);
  await back;
  body = await (await t.request("/api/v1/hardware/vram")).json();
  assert.equal(body.devices[0].state, "ok");
  assert.equal((await (await t.request("/api/v1/health")).json()).status, "ok");
});

Deno.test("GET /api/v1/hardware/vram - without a driver the service runs and says why", async () => {
  await using service = await startService(
    testConfig({
      nvmlLibrary: "/nonexistent/libnvidia-ml.so.1",
      cudartLibrary: "/nonexistent/libcudart.so",
    }),
  );
  const body: VramReport = await (await service.app.request("/api/v1/hardware/vram")).json();
  assert.equal(body.source, "none");
  assert.deepEqual(body.devices, []);
  assert.match(body.reason!, /NVML library not found: tried .*\/nonexistent\/libnvidia-ml\.so\.1/);
  assert.match(body.reason!, /CUDA runtime/);
  assert.match(body.reason!, /WebGPU: no budget/);
  // No device, nothing to be short of: 0, not the headroom as a negative (−1.5 GiB), in the
  // API and in /metrics (the fleet's recording rule sums it).
  assert.equal(body.scheduler!.availableBytes, 0);
  const metrics = await (await service.app.request("/metrics")).text();
  assert.match(metrics, /^headroom_available_bytes\{Hostname="[^"]*"\} 0$/m);
  const cpu = await startService(testConfig({ gpu: "cpu" }));
  try {
    const cpuBody: VramReport = await (await cpu.app.request("/api/v1/hardware/vram")).json();
    assert.match(cpuBody.reason!, /HEADROOM_GPU=cpu/);
  } finally {
    await cpu.close();
  }
});

Deno.test("GET /api/v1/hardware/vram/history - downsampled samples; bad parameters name themselves", async () => {
  await using t = await startOnFakeGpu({ sampleMs: 50 });
  for (let i = 0; i < 6; i++) {
    t.gpu.setOtherUsed(0, i * GiB);
    t.service.services.monitor.sample();
  }
  const response = await t.request("/api/v1/hardware/vram/history?seconds=60&points=3");
  assert.equal(response.status, 200);
  const body = await response.json();
  assert.equal(body.seconds, 60);
  assert.equal(body.samples.length, 3);
  assert.equal(body.samples.at(-1).devices[0].usedBytes, 5 * GiB, "the last run's peak survives");
  for (
    const [query, field] of [["seconds=0", "seconds"], ["points=abc", "points"], [
      "points=99999",
      "points",
    ], ["seconds=1e9", "seconds"]]
  ) {
    const bad = await t.request(`/api/v1/hardware/vram/history?${query}`);
    assert.equal(bad.status, 400, query);
    const error = await bad.json();
    assert.equal(error.error.code, "bad_query");
    assert.match(error.error.message, new RegExp(`"${field}"`), query);
  }
});

Deno.test("GET /api/v1/hardware/vram/stream - a change of used bytes arrives within 1 s", async () => {
  await using t = await startOnFakeGpu({ sampleMs: 100 });
  const controller = new AbortController();
  const response = await t.request("/api/v1/hardware/vram/stream", { signal: controller.signal });
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type")!, /text\/event-stream/);
  const events = readSse(response);
  const first = await events.next();
  assert.equal(first.value!.event, "snapshot");
  assert.equal(JSON.parse(first.value!.data).devices[0].usedBytes, 0);
  const changedAt = performance.now();
  t.gpu.setOtherUsed(0, 2 * GiB);
  let latencyMs = Infinity;
  for await (const event of events) {
    if (event.event !== "snapshot") continue;
    if (JSON.parse(event.data).devices[0].usedBytes === 2 * GiB) {
      latencyMs = performance.now() - changedAt;
      break;
    }
  }
  controller.abort();
  assert.ok(latencyMs < 1000, `the change took ${latencyMs} ms to arrive`);
});

Deno.test("GET /api/v1/hardware/vram/stream - at most four snapshots a second", async () => {
  await using t = await startOnFakeGpu({ sampleMs: 50 });
  const controller = new AbortController();
  const response = await t.request("/api/v1/hardware/vram/stream", { signal: controller.signal });
  const events = readSse(response);
  await events.next();
  const started = performance.now();
  let used = 0;
  const churn = setInterval(() => t.gpu.setOtherUsed(0, ++used * 2 ** 20), 10);
  let count = 0;
  try {
    for await (const event of events) {
      if (event.event === "snapshot") count++;
      if (performance.now() - started > 1000) break;
    }
  } finally {
    clearInterval(churn);
    controller.abort();
  }
  assert.ok(count >= 2 && count <= 5, `${count} snapshots in one second`);
});

Deno.test("GET /metrics - Prometheus text that parses, JSON on request", async () => {
  await using t = await startOnFakeGpu({}, (gpu) => {
    gpu.setName(0, 'Fake "quoted" GPU');
    gpu.setOtherUsed(0, GiB);
    gpu.setUtilization(0, 50, 0);
  });
  const response = await t.request("/metrics");
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type")!, /^text\/plain; version=0\.0\.4/);
  const families = parsePrometheus(await response.text());
  const byName = new Map(families.map((f: { name: string }) => [f.name, f]));
  for (
    const name of [
      "headroom_gpu_memory_total_bytes",
      "headroom_gpu_memory_used_bytes",
      "headroom_gpu_memory_free_bytes",
      "headroom_gpu_memory_reserved_bytes",
      "headroom_gpu_utilization_ratio",
      "headroom_gpu_temperature_celsius",
    ]
  ) {
    assert.ok(byName.has(name), `${name} is missing`);
  }
  // deno-lint-ignore no-explicit-any
  const used = byName.get("headroom_gpu_memory_used_bytes") as any;
  assert.equal(used.type, "GAUGE");
  assert.equal(Number(used.metrics[0].value), GiB);
  assert.deepEqual(used.metrics[0].labels, {
    gpu: "0",
    UUID: used.metrics[0].labels.UUID,
    modelName: 'Fake "quoted" GPU',
    Hostname: t.service.services.hostname,
  });
  // deno-lint-ignore no-explicit-any
  assert.equal(Number((byName.get("headroom_gpu_utilization_ratio") as any).metrics[0].value), 0.5);
  const json = await (await t.request("/metrics", { headers: { accept: "application/json" } }))
    .json();
  assert.equal(json.devices[0].usedBytes, GiB);
  assert.ok(Array.isArray(json.loaded_models));
});

Deno.test("HTTP - health, JSON 404 and 405", async () => {
  await using t = await startOnFakeGpu();
  const health = await t.request("/api/v1/health");
  assert.equal(health.status, 200);
  assert.deepEqual(Object.keys(await health.json()).sort(), [
    "devices",
    "lostDevices",
    "reason",
    "source",
    "status",
    "storage",
    "uptimeSeconds",
  ]);
  const missing = await t.request("/api/v1/nope");
  assert.equal(missing.status, 404);
  assert.equal((await missing.json()).error.code, "not_found");
  const wrongMethod = await t.request("/api/v1/hardware/vram", { method: "DELETE" });
  assert.equal(wrongMethod.status, 405);
  assert.equal(wrongMethod.headers.get("allow"), "GET");
  assert.equal((await wrongMethod.json()).error.code, "method_not_allowed");
});

Deno.test("HTTP - mutating routes need the token when one is set", async () => {
  const token = "t".repeat(24);
  await using t = await startOnFakeGpu({ token, gpu: "cpu" });
  const none = await t.request("/api/v1/models/ocr-det/unload", { method: "POST" });
  assert.equal(none.status, 401);
  assert.equal((await none.json()).error.code, "unauthorized");
  const wrong = await t.request("/api/v1/models/ocr-det/unload", {
    method: "POST",
    headers: { authorization: `Bearer ${"x".repeat(24)}` },
  });
  assert.equal(wrong.status, 401);
  const right = await t.request("/api/v1/models/ocr-det/load", {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ device: "cpu" }),
  });
  assert.equal(right.status, 200);
  assert.equal((await right.json()).state, "cpu");
  assert.equal((await t.request("/api/v1/hardware/vram")).status, 200, "reads stay open");
});
