// /metrics from the live state: per-model series, counters and histograms that move
// with real loads, GPU series under dcgm-exporter's label names, `loaded_models` in the
// JSON, and text that `promtool check metrics` accepts.
import assert from "node:assert/strict";
import parsePrometheus from "parse-prometheus-text-format";
import { EventLog } from "../core/events.ts";
import { EventCounters } from "../server/metrics/event_counters.ts";
import { startService } from "../server/service.ts";
import { startOnFakeGpu, testConfig } from "./_service.ts";

interface Family {
  name: string;
  type: string;
  metrics: Array<
    {
      labels?: Record<string, string>;
      value?: string;
      buckets?: Record<string, string>;
      count?: string;
    }
  >;
}

async function scrape(request: (path: string, init?: RequestInit) => Promise<Response>) {
  const response = await request("/metrics");
  assert.equal(response.status, 200);
  const text = await response.text();
  const families: Family[] = parsePrometheus(text);
  const byName = new Map(families.map((f) => [f.name, f]));
  const value = (name: string, labels: Record<string, string>) => {
    const family = byName.get(name);
    assert.ok(family, `${name} is missing`);
    const found = family.metrics.find((m) =>
      Object.entries(labels).every(([k, v]) => m.labels?.[k] === v)
    );
    return found ? Number(found.value) : undefined;
  };
  return { text, byName, value };
}

/** A models file with a tiny model, a second one never loaded, and one whose file is not ONNX. */
async function modelsDir() {
  const dir = await Deno.makeTempDir({ prefix: "headroom-metrics-" });
  await Deno.writeTextFile(`${dir}/broken.onnx`, "this is not a model");
  await Deno.writeTextFile(
    `${dir}/models.json`,
    JSON.stringify({
      models: [
        { id: "tiny", source: "synthetic:64KiB" },
        { id: "idle", source: "synthetic:64KiB" },
        { id: "broken", source: "./broken.onnx" },
      ],
    }),
  );
  return dir;
}

Deno.test("metrics - per-model series, loads and histograms follow the live state; loaded_models is real", async () => {
  const dir = await modelsDir();
  try {
    await using t = await startOnFakeGpu(
      { modelsFile: `${dir}/models.json`, nodeName: "node-a" },
      (gpu) => gpu.setName(0, "NVIDIA H200"),
    );
    const { scheduler } = t.service.services;
    const before = await scrape(t.request);
    assert.equal(before.value("headroom_model_loaded", { model: "tiny", device: "cpu" }), 0);
    assert.equal(before.value("headroom_loads_total", { device: "cpu", result: "success" }), 0);
    assert.equal(before.value("headroom_auto_switches_total", {}), 0, "exported before any switch");
    assert.equal(before.value("headroom_evictions_total", { reason: "make_room" }), 0);

    await scheduler.load("tiny", "cpu");
    await scheduler.run("tiny", {
      kind: "tensors",
      tensors: { input: { type: "float32", dims: [1, 128], data: new Float32Array(128) } },
    }).catch(() => {}); // only to stamp last use; the shape may not match
    await assert.rejects(() => scheduler.load("broken", "cpu"));

    const after = await scrape(t.request);
    const node = { Hostname: "node-a" };
    // A request brings a model on the CPU to the GPU when there is room (the software
    // adapter beside the driver double): the series follow wherever the scheduler put it.
    const where = scheduler.model("tiny").placement as "gpu" | "cpu";
    const other = where === "gpu" ? "cpu" : "gpu";
    assert.equal(
      after.value("headroom_model_loaded", { model: "tiny", device: where, ...node }),
      1,
    );
    assert.equal(after.value("headroom_model_loaded", { model: "tiny", device: other }), 0);
    assert.equal(after.value("headroom_model_loaded", { model: "idle", device: "cpu" }), 0);
    assert.equal(
      after.value("headroom_model_vram_bytes", { model: "tiny" }),
      scheduler.model("tiny").gpuBytes,
      "its tracked GPU bytes (0 on the CPU)",
    );
    // One meaning of RAM (issue 21 item 9): the session's, as the API's ramBytes; the
    // process's growth across the load under its own name.
    const ramBytes = scheduler.model("tiny").ramBytes;
    assert.ok(ramBytes > 0, `${ramBytes}`);
    assert.equal(after.value("headroom_model_ram_bytes", { model: "tiny" }), ramBytes);
    assert.ok(after.value("headroom_model_process_growth_bytes", { model: "tiny" })! >= 0);
    assert.equal(after.value("headroom_loads_total", { device: "cpu", result: "success" }), 1);
    assert.equal(after.value("headroom_loads_total", { device: "cpu", result: "failure" }), 1);
    assert.equal(after.byName.get("headroom_load_duration_seconds")!.type, "HISTOGRAM");
    assert.match(
      after.text,
      /^headroom_load_duration_seconds_count\{device="cpu",Hostname="node-a"\} 1$/m,
    );
    assert.match(
      after.text,
      /^headroom_load_duration_seconds_bucket\{device="cpu",Hostname="node-a",le="\+Inf"\} 1$/m,
    );
    // GPU series carry dcgm-exporter's label names, so they join DCGM_FI_* on UUID or Hostname.
    const used = after.byName.get("headroom_gpu_memory_used_bytes")!;
    assert.deepEqual(Object.keys(used.metrics[0].labels!).sort(), [
      "Hostname",
      "UUID",
      "gpu",
      "modelName",
    ]);
    assert.equal(used.metrics[0].labels!.modelName, "NVIDIA H200");
    assert.equal(used.metrics[0].labels!.Hostname, "node-a");

    const json = await (await t.request("/metrics", { headers: { accept: "application/json" } }))
      .json();
    assert.equal(json.hostname, "node-a");
    assert.equal(json.loaded_models.length, 1);
    const [tiny] = json.loaded_models;
    assert.equal(tiny.id, "tiny");
    assert.equal(tiny.device, where);
    assert.equal(tiny.vram_bytes, scheduler.model("tiny").gpuBytes);
    assert.equal(tiny.ram_bytes, scheduler.model("tiny").ramBytes);
    assert.ok(tiny.process_growth_bytes === null || tiny.process_growth_bytes >= 0);
    assert.ok(tiny.last_known.cpu, "the profile measured at its load");
    assert.equal(typeof tiny.last_known.cpu.loadMs, "number");

    await scheduler.unload("tiny");
    const unloaded = await scrape(t.request);
    assert.equal(unloaded.value("headroom_model_loaded", { model: "tiny", device: where }), 0);
    const empty = await (await t.request("/metrics", { headers: { accept: "application/json" } }))
      .json();
    assert.deepEqual(empty.loaded_models, []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("metrics - counters count evictions by reason, OOM retries and auto-switches from events", () => {
  const events = new EventLog(4); // a small ring: the totals must not depend on it
  const counters = new EventCounters(events);
  for (const reasonCode of ["make_room", "make_room", "headroom", "oom"] as const) {
    events.emit({
      kind: "eviction",
      pipeline: "a",
      message: "",
      reason: "",
      reasonCode,
      bytes: 1,
      idleMs: null,
    });
  }
  events.emit({ kind: "oom", pipeline: "a", message: "out of memory", reason: "oom" });
  const switched = { reason: "", bytes: 0, vramMb: 0, ramMb: 0 };
  events.emit({ kind: "auto-switch", pipeline: "b", message: "switched to b", ...switched });
  events.emit({ kind: "auto-switch", pipeline: "a", message: "switched to a", ...switched });
  events.emit({ kind: "info", pipeline: "a", message: "a: load:gpu failed", attempt: "load:gpu" });
  events.emit({
    kind: "transition",
    pipeline: "a",
    message: "a: rehydrate",
    reason: "rehydrate",
    bytes: 1,
    figures: {
      kind: "rehydrate",
      ms: 300,
      gpuBytes: 1,
      rssDeltaBytes: 0,
      ramBytes: 0,
      deviceUsedDeltaBytes: null,
      at: 0,
    },
  });
  assert.equal(counters.evictions.get("make_room"), 2);
  assert.equal(counters.evictions.get("headroom"), 1);
  assert.equal(counters.evictions.get("oom"), 1);
  assert.equal(counters.oomRetries, 1);
  assert.equal(counters.autoSwitches, 2);
  assert.equal(counters.loads.get("gpu/failure"), 1);
  const [rehydrate] = counters.rehydrateSeconds.series();
  assert.equal(rehydrate.count, 1);
  assert.equal(rehydrate.sum, 0.3);
  const bound = counters.rehydrateSeconds.bounds.indexOf(0.25);
  assert.equal(rehydrate.buckets[bound], 0, "0.3 s is above the 0.25 s bucket");
  assert.equal(rehydrate.buckets[bound + 1], 1, "and within 0.5 s");
  counters.close();
  events.emit({ kind: "oom", pipeline: "a", message: "after close", reason: "oom" });
  assert.equal(counters.oomRetries, 1);
});

/** What `promtool check metrics` says of `text`, but for the one finding allowed (below). */
async function promtoolFindings(text: string): Promise<string[]> {
  const child = new Deno.Command("promtool", {
    args: ["check", "metrics"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(text));
  await writer.close();
  const out = await child.output();
  const report = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  // Exit 1 = the text does not parse. Its lint (exit 3) flags camelCase label names, and
  // the only ones allowed are dcgm-exporter's own (UUID, modelName, Hostname): they are
  // what lets headroom_gpu_* join DCGM_FI_* in PromQL, and dcgm-exporter's output gets
  // the same finding. Anything else it says is a failure.
  assert.notEqual(out.code, 1, report);
  const findings = report.split("\n").filter((line) => line.trim() !== "");
  const allowed =
    /^headroom_gpu_[a-z_]+ label names should be written in 'snake_case' not 'camelCase'$/;
  assert.ok(out.code === 0 || findings.length > 0, report);
  return findings.filter((line) => !allowed.test(line));
}

Deno.test("metrics - promtool check metrics accepts the exposition", async () => {
  await using t = await startOnFakeGpu({}, (gpu) => gpu.setName(0, 'Fake "quoted" GPU'));
  await t.service.services.scheduler.load("silero-vad", "cpu");
  const text = await (await t.request("/metrics")).text();
  assert.deepEqual(await promtoolFindings(text), []);
});

Deno.test("metrics - inference requests count by outcome, with request, queue and compute seconds", async () => {
  const dir = await modelsDir();
  try {
    await using service = await startService(
      testConfig({ gpu: "cpu", modelsFile: `${dir}/models.json`, nodeName: "node-a" }),
    );
    const { scheduler } = service.services;
    await scheduler.load("tiny", "cpu");
    const width = Number(scheduler.model("tiny").inputs[0].dims[1]);
    const body = JSON.stringify({
      inputs: [{
        name: "input",
        shape: [1, width],
        datatype: "FP32",
        data: Array(width).fill(0.5),
      }],
    });
    for (let i = 0; i < 3; i++) {
      const response = await service.app.request("/v2/models/tiny/infer", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
      assert.equal(response.status, 200, await response.text());
    }
    // One whose width the model does not take, refused by the engine, and one for no model.
    await assert.rejects(() =>
      scheduler.run("tiny", {
        kind: "tensors",
        tensors: {
          input: { type: "float32", dims: [1, width + 1], data: new Float32Array(width + 1) },
        },
      })
    );
    await assert.rejects(() => scheduler.run("nope", { kind: "tensors", tensors: {} }));

    const { text, value } = await scrape(async (path) => await service.app.request(path));
    const node = { Hostname: "node-a" };
    const requests = "headroom_inference_requests_total";
    assert.equal(value(requests, { model: "tiny", outcome: "success", ...node }), 3);
    assert.equal(value(requests, { model: "tiny", outcome: "bad_tensor", ...node }), 1);
    assert.doesNotMatch(text, /model="nope"/, "no series for a model that does not exist");
    const sum = (name: string) => {
      const line = new RegExp(`^${name}_sum\\{model="tiny",Hostname="node-a"\\} (\\S+)$`, "m");
      const count = new RegExp(`^${name}_count\\{model="tiny",Hostname="node-a"\\} 3$`, "m");
      assert.match(text, count, `${name} counts the 3 answered requests`);
      return Number(text.match(line)![1]);
    };
    const total = sum("headroom_inference_request_duration_seconds");
    const queue = sum("headroom_inference_queue_duration_seconds");
    const compute = sum("headroom_inference_compute_duration_seconds");
    assert.ok(compute > 0, `compute ${compute} s`);
    // The queue wait comes before the session call, and both lie within the request, in seconds.
    assert.ok(queue + compute <= total, `queue ${queue} + compute ${compute} > total ${total}`);
    assert.ok(total < 10, `${total} s for three runs of a 64 KiB model: not milliseconds`);
    assert.deepEqual(await promtoolFindings(text), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("metrics - counters read typed fields: an oom eviction and a failed CPU load count with no message text", () => {
  const events = new EventLog(10);
  const counters = new EventCounters(events);
  events.emit({
    kind: "eviction",
    pipeline: "a",
    message: "",
    reason: "",
    reasonCode: "oom",
    bytes: 1,
    idleMs: 5,
  });
  events.emit({ kind: "failure", pipeline: "a", message: "", attempt: "load:cpu" });
  events.emit({ kind: "info", pipeline: "a", message: "load:gpu failed", attempt: "offload" });
  assert.equal(counters.evictions.get("oom"), 1);
  assert.equal(counters.evictions.get("make_room"), 0);
  assert.equal(counters.loads.get("cpu/failure"), 1);
  assert.equal(counters.loads.get("gpu/failure"), 0, "the words in a message count for nothing");
  counters.close();
});
