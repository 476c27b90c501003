/**
 * Exclusive sections (switch, test load), the switch that cannot lose, and exclusive
 * mode, on the model host: requests for other models wait while a section runs (bounded
 * by the queue limit), measurements see only their model, a switch unloads nothing it
 * cannot replace, and in exclusive mode an ordinary request switches.
 */
import assert from "node:assert/strict";
import { writeArtifact } from "./fixtures/artifact.ts";
import { EventLog } from "../core/events.ts";
import { PipelineError } from "../core/pipelines/pipeline_error.ts";
import type { TestLoadEvent } from "../core/placement/types.ts";
import type { HeadroomEvent } from "../core/types.ts";
import type { RunInput } from "../core/pipelines/protocol.ts";
import {
  exclusivePair,
  FakeClock,
  schedulerOnSim,
  SimGpu,
  type SimPipelineSpec,
} from "./_sim_gpu.ts";
import { settle } from "./_fake_clock.ts";

const INPUT: RunInput = { kind: "tensors", tensors: {} };
const MB = 1e6;

interface Options {
  pipelines?: SimPipelineSpec[];
  onInsufficientVram?: "cpu" | "reject";
  mode?: "shared" | "exclusive";
  queueLimit?: number;
  totalBytes?: number;
}

function world(options: Options = {}) {
  const clock = new FakeClock();
  const sim = new SimGpu({
    totalBytes: options.totalBytes ?? 1000 * MB,
    pipelines: options.pipelines ?? [
      { id: "a", gpuBytes: 100 * MB, placement: "gpu" },
      { id: "b", gpuBytes: 200 * MB },
      { id: "c", gpuBytes: 300 * MB },
    ],
    clock,
  });
  // Each model on the GPU costs its bytes of device memory, and its session holds a tenth
  // of that in RAM while loaded anywhere (SimGpu's default): the process RSS follows it.
  const rss = () =>
    sim.ids().reduce(
      (sum, id) =>
        sum + (sim.placementOf(id) === "none" ? 0 : sim.footprint(id).profileBytes! / 10),
      0,
    );
  const events = new EventLog(1000);
  const scheduler = schedulerOnSim(sim, {
    events,
    headroomBytes: 50 * MB,
    onInsufficientVram: options.onInsufficientVram ?? "cpu",
    mode: options.mode,
    queueLimit: options.queueLimit,
    meter: { rssBytes: rss, deviceUsedBytes: () => sim.totalBytes - sim.freeBytes() },
  });
  const kinds = <K extends HeadroomEvent["kind"]>(kind: K) =>
    events.recent(1000).reverse().filter((
      e,
    ): e is Extract<HeadroomEvent, { kind: unknown }> & { kind: K } => e.kind === kind);
  const loaded = () => sim.ids().filter((id) => sim.placementOf(id) !== "none");
  return { clock, sim, scheduler, events, kinds, loaded };
}

/** A gate a test opens: a load of `id` waits for it. */
function holdLoads(sim: SimGpu, id: string) {
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  let reached!: () => void;
  const started = new Promise<void>((resolve) => (reached = resolve));
  sim.delay = (op, which) => {
    if (op === "load" && which === id) {
      reached();
      return gate;
    }
    return Promise.resolve();
  };
  return { open, started };
}

// --- exclusive sections --------------------------------------------------------------

Deno.test("sections - requests for other models wait while a switch runs; its figures are exactly its model's", async () => {
  const { sim, scheduler, loaded } = world();
  const hold = holdLoads(sim, "b");
  const switching = scheduler.switchTo("b");
  await hold.started;
  // Inference fired at other models while the switch loads b.
  const others = [scheduler.run("a", INPUT), scheduler.run("c", INPUT), scheduler.run("a", INPUT)];
  await settle();
  assert.equal(
    sim.calls.filter((c) => c.op === "run").length,
    0,
    "a request ran during the switch",
  );
  assert.equal(scheduler.section, "switch to b");
  hold.open();
  const result = await switching;
  assert.equal(result.vram_mb, 200, "exactly b's 200 MB");
  assert.equal(result.ram_mb, 20, "exactly b's 20 MB");
  assert.deepEqual(result.unloaded, ["a"]);
  assert.equal(result.device, "gpu");
  const answers = await Promise.all(others);
  assert.ok(answers.every((r) => r.device === "gpu"));
  assert.deepEqual(loaded(), ["a", "b", "c"], "after the switch, the waiting requests were served");
  await writeArtifact("sections_switch", {
    vramMb: result.vram_mb,
    ramMb: result.ram_mb,
    requestsMeanwhile: others.length,
  });
});

Deno.test("sections - a switch fired during a test load waits for it; no measurement sees another model, nothing is undone", async () => {
  const { sim, scheduler, loaded } = world();
  const hold = holdLoads(sim, "a");
  const events: TestLoadEvent[] = [];
  const testing = scheduler.testLoad(["a", "b"], "gpu", (e) => void events.push(e));
  await hold.started;
  const switching = scheduler.switchTo("c");
  const request = scheduler.run("b", INPUT);
  await settle();
  assert.equal(scheduler.section, "test load");
  hold.open();
  assert.deepEqual(await testing, { failed: 0 });
  const measured = events.filter((e) => e.event === "measured").map((e) =>
    e.event === "measured"
      ? [e.model, e.measurement.vramBytes / MB, e.measurement.ramBytes / MB]
      : []
  );
  assert.deepEqual(measured, [["a", 100, 10], ["b", 200, 20]]);
  const switched = await switching;
  assert.equal(switched.vram_mb, 300);
  assert.equal(switched.ram_mb, 30);
  assert.deepEqual(switched.unloaded, ["a"], "the test load put a back; the switch unloads it");
  await request;
  assert.ok(loaded().includes("c"), "the switched model stays loaded after the test load");
});

Deno.test("sections - past the queue limit, a request waiting on a section gets 429 with Retry-After", async () => {
  const { sim, scheduler } = world({ queueLimit: 2 });
  const hold = holdLoads(sim, "b");
  const switching = scheduler.switchTo("b");
  await hold.started;
  const waiting = [scheduler.run("c", INPUT), scheduler.run("c", INPUT)];
  await assert.rejects(() => scheduler.run("c", INPUT), (error: unknown) => {
    assert.ok(error instanceof PipelineError);
    assert.equal(error.code, "queue_full");
    assert.equal(error.retryAfterSeconds, 2);
    return true;
  });
  hold.open();
  await switching;
  await Promise.all(waiting);
});

Deno.test("sections - a second test load is refused with busy while one runs", async () => {
  const { sim, scheduler } = world();
  const hold = holdLoads(sim, "a");
  const first = scheduler.testLoad(["a"], "gpu", () => {});
  await hold.started;
  assert.throws(
    () => scheduler.testLoad(["b"], "gpu", () => {}),
    (error: unknown) => error instanceof PipelineError && error.code === "busy",
  );
  hold.open();
  await first;
});

// --- the switch that cannot lose ------------------------------------------------------

Deno.test("switch - reject mode, a target that cannot fit: 507, nothing unloaded", async () => {
  const { sim, scheduler, kinds, loaded } = world({
    onInsufficientVram: "reject",
    pipelines: [
      { id: "a", gpuBytes: 100 * MB, placement: "gpu" },
      { id: "huge", gpuBytes: 2000 * MB },
    ],
  });
  await assert.rejects(() => scheduler.switchTo("huge"), (error: unknown) => {
    assert.ok(error instanceof PipelineError);
    assert.equal(error.code, "oom");
    assert.match(
      error.message,
      /^Not enough GPU memory to switch: huge needs 2\.00 GB|^Not enough GPU memory to switch: huge needs /,
    );
    assert.match(error.message, /Nothing was unloaded/);
    return true;
  });
  assert.deepEqual(loaded(), ["a"]);
  assert.equal(sim.calls.filter((c) => c.op === "unload").length, 0);
  assert.match(kinds("failure").at(-1)!.message, /nothing was unloaded$/);
});

Deno.test("switch - a target that fails to load: the previous models are put back, and the answer says so", async () => {
  const { sim, scheduler, loaded } = world({
    pipelines: [
      { id: "a", gpuBytes: 100 * MB, placement: "gpu" },
      { id: "b", gpuBytes: 100 * MB, placement: "cpu" },
      { id: "broken", gpuBytes: 100 * MB },
    ],
  });
  const load = sim.load.bind(sim);
  sim.load = (id, device) =>
    id === "broken"
      ? Promise.reject(new PipelineError("load_failed", 'Pipeline "broken": the file is corrupt'))
      : load(id, device);
  await assert.rejects(() => scheduler.switchTo("broken"), (error: unknown) => {
    assert.ok(error instanceof PipelineError);
    assert.equal(error.code, "load_failed");
    assert.match(error.message, /the file is corrupt; put back: a, b$/);
    return true;
  });
  assert.deepEqual(loaded(), ["a", "b"]);
  assert.equal(sim.placementOf("a"), "gpu");
  assert.equal(sim.placementOf("b"), "cpu");
});

Deno.test("switch - to the model already loaded alone: answered at once, nothing reloaded", async () => {
  const { sim, scheduler } = world({
    pipelines: [{ id: "a", gpuBytes: 100 * MB, placement: "gpu" }],
  });
  const result = await scheduler.switchTo("a");
  assert.equal(result.already_loaded, true);
  assert.equal(result.vram_mb, 100);
  assert.deepEqual(result.unloaded, []);
  assert.deepEqual(sim.calls, [], "no unload, no load");
});

Deno.test("switch - cpu mode, a target too big for the GPU lands on the CPU and says why", async () => {
  const { scheduler } = world({
    pipelines: [{ id: "a", gpuBytes: 100 * MB, placement: "gpu" }, {
      id: "huge",
      gpuBytes: 2000 * MB,
    }],
  });
  const result = await scheduler.switchTo("huge");
  assert.equal(result.device, "cpu");
  assert.match(
    result.reason ?? "",
    /^huge needs .* and evicting every idle pipeline frees only 0 B$/,
  );
  assert.deepEqual(result.unloaded, ["a"]);
});

Deno.test("switch - refused with busy when another model has an open stream", async () => {
  const { scheduler, loaded } = world();
  scheduler.markActive("a");
  await assert.rejects(
    () => scheduler.switchTo("b"),
    (error: unknown) =>
      error instanceof PipelineError && error.code === "busy" &&
      /a has an open stream/.test(error.message),
  );
  assert.deepEqual(loaded(), ["a"]);
  scheduler.markIdle("a");
});

// --- exclusive mode -----------------------------------------------------------------------

Deno.test("exclusive mode - a request for a model that is not loaded switches to it: an auto-switch event with trigger and figures", async () => {
  const { scheduler, kinds, loaded } = world({ mode: "exclusive" });
  const result = await scheduler.run("c", INPUT, { trigger: "infer" });
  assert.equal(result.device, "gpu");
  assert.deepEqual(loaded(), ["c"], "only that model stays loaded");
  const [event] = kinds("auto-switch");
  assert.equal(event.model, "c");
  assert.equal(event.trigger, "infer");
  assert.equal(event.vramMb, 300);
  assert.equal(event.ramMb, 30);
  assert.match(
    event.message,
    /^auto-switched \(infer\) to c on the GPU: 300 MB VRAM, 30 MB RAM, \d+ ms; unloaded a$/,
  );
  // A request for the loaded model does not switch again.
  await scheduler.run("c", INPUT, { trigger: "infer" });
  assert.equal(kinds("auto-switch").length, 1);
});

Deno.test("exclusive mode - a group (OCR's det, cls, rec) is switched to as one", async () => {
  const { scheduler, kinds, loaded } = world({
    mode: "exclusive",
    pipelines: [
      { id: "vad", gpuBytes: 10 * MB, placement: "gpu" },
      { id: "det", gpuBytes: 20 * MB },
      { id: "cls", gpuBytes: 20 * MB },
      { id: "rec", gpuBytes: 20 * MB },
    ],
  });
  const group = ["det", "cls", "rec"];
  for (const id of group) await scheduler.run(id, INPUT, { trigger: "ocr", group });
  assert.deepEqual(loaded(), group);
  assert.equal(kinds("auto-switch").length, 1);
});

Deno.test("exclusive mode - concurrent requests for two models: each is served, each switch measured alone", async () => {
  const { scheduler, kinds } = world({ mode: "exclusive" });
  const answers = await Promise.all([
    scheduler.run("b", INPUT, { trigger: "infer" }),
    scheduler.run("c", INPUT, { trigger: "infer" }),
    scheduler.run("b", INPUT, { trigger: "infer" }),
  ]);
  assert.equal(answers.length, 3);
  for (const event of kinds("auto-switch")) {
    assert.equal(event.vramMb, event.model === "b" ? 200 : 300);
  }
});

Deno.test("shared mode (default) - a request never switches", async () => {
  const { scheduler, kinds, loaded } = world();
  await scheduler.run("c", INPUT);
  assert.deepEqual(kinds("auto-switch"), []);
  assert.deepEqual(loaded(), ["a", "c"]);
});

Deno.test("sections - a test load puts back what was loaded before, placements and pins, and its last event says so", async () => {
  // issue 21 item 13: it unloaded pinned models and left every model unloaded.
  const { sim, scheduler } = world({
    pipelines: [
      { id: "a", gpuBytes: 100 * MB, placement: "gpu" },
      { id: "b", gpuBytes: 200 * MB, placement: "cpu" },
      { id: "c", gpuBytes: 300 * MB },
    ],
  });
  scheduler.pin("a", true);
  const events: TestLoadEvent[] = [];
  assert.deepEqual(await scheduler.testLoad(["a", "b", "c"], "gpu", (e) => void events.push(e)), {
    failed: 0,
  });
  assert.deepEqual(
    ["a", "b", "c"].map((id) => [id, sim.placementOf(id), scheduler.model(id).pinned]),
    [["a", "gpu", true], ["b", "cpu", false], ["c", "none", false]],
  );
  const done = events.at(-1)!;
  assert.equal(done.event, "done");
  if (done.event !== "done") return;
  assert.deepEqual([done.restored, done.notRestored], [["a", "b"], []]);
  assert.equal(done.message, "test load of a, b, c: 3 measured, 0 failed; put back: a, b");
});

// --- exclusive mode's line: the loaded model's queue first, within HEADROOM_MAX_WAIT -----------

Deno.test("exclusive line - 200 alternating requests arriving together: the loaded model's queue is served first, one switch instead of one per request", async () => {
  const { switches, request, drain, clock } = exclusivePair(2_000);
  const start = clock.now();
  for (let i = 0; i < 200; i++) request(i % 2 === 0 ? "a" : "b");
  const answers = await drain();
  assert.equal(switches(), 1, "a's 100 requests, one switch to b, b's 100");
  // a's 100 runs, one load, b's 100 runs (10 ms each, the load 100 ms), nothing else.
  assert.equal(Math.max(...answers.map((x) => x.at + x.ms)) - start, 100 * 10 + 100 + 100 * 10);
  // b's first request waited for a's queue (1 s), under the 2 s limit.
  assert.ok(Math.max(...answers.map((x) => x.ms)) <= 2_000 + 200);
});

Deno.test("exclusive line - with HEADROOM_MAX_WAIT=0 it is first come, first served: a switch per alternation", async () => {
  const { switches, request, drain } = exclusivePair(0);
  for (let i = 0; i < 40; i++) request(i % 2 === 0 ? "a" : "b");
  await drain();
  assert.equal(switches(), 39);
});

Deno.test("exclusive line - while the loaded model's requests keep coming, another model's request waits the limit and no more than a small slack", async () => {
  const runMs = 20;
  const loadMs = 100;
  const { clock, switches, request, drain } = exclusivePair(2_000, { runMs, loadMs });
  // a's requests come every 16 ms for 2.4 s (more than a can serve: its queue never
  // empties); b's one request comes at 20 ms.
  for (let t = 0; t < 2_400; t += 16) clock.setTimeout(() => request("a"), t);
  clock.setTimeout(() => request("b"), 20);
  await clock.tick(2_400); // every request has arrived
  const answers = await drain();
  const b = answers.find((x) => x.id === "b")!;
  // It waited for the limit (a kept coming: no early switch), then at most the a requests
  // already let through (EXCLUSIVE_AHEAD = 8 runs), its switch and its own run.
  assert.ok(b.ms >= 2_000, `b answered after ${b.ms} ms: it switched before the limit`);
  assert.ok(b.ms <= 2_000 + 8 * runMs + loadMs + runMs, `b waited ${b.ms} ms`);
  // a → b once, b → a once.
  assert.equal(switches(), 2);
  // a's requests that came after b's limit passed waited behind it, not in front of it.
  const cutIn = answers.filter((x) =>
    x.id === "a" && x.at > b.at + 2_000 && x.at + x.ms < b.at + b.ms
  );
  assert.deepEqual(cutIn, []);
});

Deno.test("exclusive line - among requests for other models, the higher priority is switched to first", async () => {
  const { request, drain } = exclusivePair(2_000);
  request("a");
  request("b", "low");
  request("c", "high");
  const answers = await drain();
  const done = (id: string) => answers.find((x) => x.id === id)!;
  assert.ok(done("c").ms < done("b").ms, "c (high) before b (low), though b came first");
});
