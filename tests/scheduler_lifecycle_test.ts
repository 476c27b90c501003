/**
 * The headroom as configured (no hidden cap), keep-alive and preload, cancellation and
 * request timeouts, and events as data (structured fields, failure events, persisted
 * across a restart). Scheduler-level on the model host with a fake clock; the start-up
 * checks and persistence through the service on the driver double.
 */
import assert from "node:assert/strict";
import { EventLog } from "../core/events.ts";
import { ConfigError, parseConfig } from "../core/config.ts";
import { PipelineError } from "../core/pipelines/pipeline_error.ts";
import { startService } from "../server/service.ts";
import type { RunInput } from "../core/pipelines/protocol.ts";
import { FakeClock, GiB, MiB, schedulerOnSim, SimGpu, type SimPipelineSpec } from "./_sim_gpu.ts";
import { settle } from "./_fake_clock.ts";
import { testConfig } from "./_service.ts";
import { FakeGpu } from "./fake_gpu.ts";

const INPUT: RunInput = { kind: "tensors", tensors: {} };

function world(
  options: {
    pipelines?: SimPipelineSpec[];
    totalBytes?: number;
    headroomBytes?: number;
    keepAliveMs?: number | null;
    idleAction?: "offload" | "unload";
    requestTimeoutMs?: number;
  } = {},
) {
  const clock = new FakeClock();
  const sim = new SimGpu({
    totalBytes: options.totalBytes ?? 8 * GiB,
    pipelines: options.pipelines ??
      [{ id: "a", gpuBytes: 100 * MiB }, { id: "b", gpuBytes: 100 * MiB }],
    clock,
  });
  const events = new EventLog(1000);
  const scheduler = schedulerOnSim(sim, {
    events,
    headroomBytes: options.headroomBytes ?? 0,
    requestTimeoutMs: options.requestTimeoutMs,
    keepAlive: () => ({
      ms: options.keepAliveMs ?? null,
      idleAction: options.idleAction ?? "offload",
    }),
  });
  return { clock, sim, scheduler, events };
}

// --- headroom as configured ---------------------------------------------------------------

Deno.test("headroom - used exactly as configured: 2 GiB on an 8 GiB device keeps 2 GiB free (no cap at a tenth)", async () => {
  const { sim, scheduler } = world({
    headroomBytes: 2 * GiB,
    pipelines: [
      { id: "a", gpuBytes: 3 * GiB, placement: "gpu" },
      { id: "b", gpuBytes: 3.5 * GiB },
    ],
  });
  assert.equal(scheduler.status().headroomBytes, 2 * GiB);
  assert.equal(scheduler.status().availableBytes, 3 * GiB);
  // b (3.5 GiB) fits beside a only by eating into the 2 GiB (a tenth, 819 MiB, would let
  // it): a moves to the CPU.
  assert.equal(await scheduler.place("b"), "gpu");
  assert.equal(sim.placementOf("a"), "cpu");
  assert.ok(sim.freeBytes() >= 2 * GiB);
});

Deno.test("headroom - at or above a byte budget is a start-up error naming both values and the setting as typed", () => {
  assert.throws(
    () => parseConfig(["--vram-budget", "1GiB", "--headroom", "1GiB"], new Map()),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(
        error.problems.join("\n"),
        /^--headroom: the headroom \(1073741824 bytes\) is at or above the VRAM budget \(1073741824 bytes\)/,
      );
      return true;
    },
  );
  assert.throws(
    () =>
      parseConfig([], new Map([["HEADROOM_VRAM_BUDGET", "1GiB"], ["HEADROOM_HEADROOM", "2GiB"]])),
    /HEADROOM_HEADROOM: the headroom \(2147483648 bytes\)/,
  );
});

Deno.test("headroom - at or above the device's total is a start-up error naming both values", async () => {
  const gpu = new FakeGpu({ isolate: true });
  try {
    gpu.setTotal(0, 1 * GiB);
    await assert.rejects(
      () =>
        startService(
          testConfig({
            nvmlLibrary: gpu.path,
            headroomBytes: 1.5 * GiB,
            givenAs: { headroomBytes: "--headroom" },
          }),
        ),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.match(
          error.message,
          /--headroom: the headroom \(1610612736 bytes\) is at or above the device's total memory \(1073741824 bytes\)/,
        );
        return true;
      },
    );
  } finally {
    gpu.close();
  }
});

Deno.test("config - mode, keep-alive, idle action and request timeout parse, and bad values name themselves", () => {
  const result = parseConfig(
    ["--mode", "exclusive", "--keep-alive", "5m", "--idle-action", "unload"],
    new Map([["HEADROOM_REQUEST_TIMEOUT", "30s"]]),
  );
  assert.ok(!result.help);
  assert.equal(result.config.mode, "exclusive");
  assert.equal(result.config.keepAliveMs, 300_000);
  assert.equal(result.config.idleAction, "unload");
  assert.equal(result.config.requestTimeoutMs, 30_000);
  const defaults = parseConfig([], new Map());
  assert.ok(!defaults.help);
  assert.equal(defaults.config.mode, "shared");
  assert.equal(defaults.config.keepAliveMs, null, "keep-alive is off by default");
  assert.equal(defaults.config.requestTimeoutMs, 120_000);
  assert.throws(
    () => parseConfig(["--mode", "solo", "--keep-alive", "soon"], new Map()),
    (error: unknown) =>
      error instanceof ConfigError &&
      /--mode="solo": expected shared or exclusive/.test(error.message) &&
      /--keep-alive="soon": expected off or a duration/.test(error.message),
  );
});

// --- keep-alive ---------------------------------------------------------------------------

Deno.test("keep-alive - an idle pipeline is offloaded once its keep-alive runs out, with the countdown shown before", async () => {
  const { clock, sim, scheduler, events } = world({ keepAliveMs: 60_000 });
  await scheduler.run("a", INPUT);
  const deadline = scheduler.model("a").keepAliveDeadline;
  assert.equal(deadline, clock.now() + 60_000, "the countdown is on the model");
  assert.equal(
    scheduler.status().pipelines.find((p) => p.id === "a")!.keepAliveDeadline,
    deadline,
  );
  await clock.tick(59_000);
  assert.equal(sim.placementOf("a"), "gpu");
  await scheduler.run("a", INPUT); // used again: the countdown starts over
  await clock.tick(59_000);
  assert.equal(sim.placementOf("a"), "gpu");
  await clock.tick(2_000);
  await scheduler.settled();
  assert.equal(sim.placementOf("a"), "cpu");
  const [event] = events.recent(10).filter((e) => e.kind === "keep-alive");
  assert.equal(event.trigger, "keep-alive");
  assert.equal(event.idleMs, 60_000);
  assert.match(event.message, /^offloaded a: idle 60 s, past its keep-alive of 60 s$/);
  assert.equal(scheduler.model("a").keepAliveDeadline, null);
});

Deno.test("keep-alive - idleAction unload ends the worker; pinned and active pipelines are kept", async () => {
  const { clock, sim, scheduler } = world({ keepAliveMs: 10_000, idleAction: "unload" });
  await scheduler.run("a", INPUT);
  await scheduler.run("b", INPUT);
  scheduler.pin("b", true);
  scheduler.markActive("a"); // a stream opens
  await clock.tick(20_000);
  await scheduler.settled();
  assert.equal(sim.placementOf("a"), "gpu", "active");
  assert.equal(sim.placementOf("b"), "gpu", "pinned");
  scheduler.markIdle("a");
  await clock.tick(11_000);
  await scheduler.settled();
  assert.equal(sim.placementOf("a"), "none");
});

Deno.test("keep-alive - off by default: nothing expires", async () => {
  const { clock, sim, scheduler } = world();
  await scheduler.run("a", INPUT);
  assert.equal(scheduler.model("a").keepAliveDeadline, null);
  await clock.tick(24 * 3_600_000);
  assert.equal(sim.placementOf("a"), "gpu");
});

Deno.test("preload - models marked preload are loaded at start", async () => {
  const { sim, scheduler } = world();
  await scheduler.preload(["b"]);
  assert.equal(sim.placementOf("b"), "gpu");
  assert.equal(sim.placementOf("a"), "none");
});

// --- cancellation and timeouts -------------------------------------------------------------

Deno.test("cancellation - a client that disconnects leaves the queue: its request never runs", async () => {
  const { sim, scheduler } = world({ pipelines: [{ id: "a", gpuBytes: MiB, placement: "gpu" }] });
  let release!: () => void;
  sim.delay = (op) => op === "run" ? new Promise((r) => (release = r)) : Promise.resolve();
  const busy = scheduler.run("a", INPUT); // a long OCR image holds the pipeline
  await settle();
  const client = new AbortController();
  const queued = scheduler.run("a", INPUT, { signal: client.signal });
  await settle();
  client.abort();
  await assert.rejects(
    () => queued,
    (error: unknown) => error instanceof PipelineError && error.code === "cancelled",
  );
  assert.equal(scheduler.status().pipelines[0].activeCount, 1, "only the running one counts");
  release();
  await busy;
  const ran = sim.calls.filter((c) => c.op === "run" && c.result !== undefined);
  assert.equal(ran.length, 1, "the cancelled request never ran");
});

Deno.test("timeouts - a request past the timeout answers 504; a worker stuck past it is replaced, bystanders untouched", async () => {
  const { clock, sim, scheduler } = world({
    requestTimeoutMs: 120_000,
    pipelines: [
      { id: "a", gpuBytes: MiB, placement: "gpu" },
      { id: "b", gpuBytes: MiB, placement: "gpu" },
    ],
  });
  const replaced: string[] = [];
  const replace = sim.replace.bind(sim);
  // A stuck worker: its run never answers, until the worker is ended.
  let die: (error: Error) => void = () => {};
  sim.replace = (id, reason) => {
    replaced.push(`${id}: ${reason}`);
    replace(id, reason);
    die(new Error(`worker ended: ${reason}`));
  };
  sim.delay = (op, id) =>
    op === "run" && id === "a" ? new Promise((_, reject) => (die = reject)) : Promise.resolve();
  // The SimGpu run does not watch the deadline as the real host does: model it here.
  const run = sim.run.bind(sim);
  sim.run = (id, input, options = {}) => {
    const running = run(id, input, options);
    if (id !== "a") return running;
    return new Promise((resolve, reject) => {
      options.deadline?.addEventListener("abort", () => {
        sim.replace(id, "stuck past the request timeout");
        reject(options.deadline!.reason);
      });
      running.then(resolve, reject);
    });
  };
  const answers = Promise.allSettled([scheduler.run("a", INPUT), scheduler.run("a", INPUT)]);
  await clock.tick(120_001);
  for (const answer of await answers) {
    assert.equal(answer.status, "rejected");
    const error = (answer as PromiseRejectedResult).reason;
    assert.ok(error instanceof PipelineError);
    assert.equal(error.code, "timeout");
    assert.match(error.message, /took longer than 120000 ms \(HEADROOM_REQUEST_TIMEOUT\)/);
  }
  assert.ok(replaced.length >= 1);
  assert.ok(replaced.every((r) => r === "a: stuck past the request timeout"), replaced.join("; "));
  assert.equal(sim.placementOf("b"), "gpu");
  assert.equal((await scheduler.run("b", INPUT)).device, "gpu");
  // The next request on a starts afresh (the scheduler loads it again).
  sim.delay = () => Promise.resolve();
  await settle();
  assert.equal((await scheduler.run("a", INPUT)).device, "gpu");
});

// --- events as data ------------------------------------------------------------------------

Deno.test("events - structured fields beside the sentence; failed loads emit failure events", async () => {
  const { sim, scheduler, events } = world({
    headroomBytes: 0,
    totalBytes: 150 * MiB,
    pipelines: [
      { id: "a", gpuBytes: 100 * MiB, placement: "gpu" },
      { id: "b", gpuBytes: 100 * MiB },
      { id: "broken", gpuBytes: MiB },
    ],
  });
  await scheduler.run("b", INPUT, { trigger: "infer" });
  const eviction = events.recent(100).find((e) => e.kind === "eviction")!;
  assert.equal(eviction.model, "a");
  assert.equal(eviction.bytes, 100 * MiB);
  assert.equal(eviction.idleMs, null);
  assert.equal(eviction.reason, "to make room for b");
  assert.equal(eviction.trigger, "request");
  assert.match(eviction.message, /^evicted a \(never used, 100 MiB\) to make room for b$/);
  const load = sim.load.bind(sim);
  sim.load = (id, device) =>
    id === "broken"
      ? Promise.reject(new PipelineError("load_failed", "the file is corrupt"))
      : load(id, device);
  await assert.rejects(() => scheduler.run("broken", INPUT));
  const failure = events.recent(100).find((e) => e.kind === "failure")!;
  assert.equal(failure.model, "broken");
  assert.equal(failure.reason, "the file is corrupt");
  assert.match(failure.message, /^broken: loading on the GPU failed: the file is corrupt$/);
});

Deno.test("events - the last events persisted in KV show after a restart", async () => {
  const gpu = new FakeGpu({ isolate: true });
  const config = testConfig({ nvmlLibrary: gpu.path, gpu: "nvidia" });
  try {
    {
      await using first = await startService(config);
      first.services.scheduler.pin("silero-vad", true);
      await new Promise((resolve) => setTimeout(resolve, 50)); // the KV write lands
    }
    await using second = await startService(config);
    const recent = second.services.events.recent(20);
    const pinned = recent.find((e) => e.message === "silero-vad pinned");
    assert.ok(pinned, JSON.stringify(recent.map((e) => e.message)));
    assert.equal(pinned.model, "silero-vad");
    assert.equal(pinned.trigger, "api");
    second.services.scheduler.pin("silero-vad", false);
    assert.ok(second.services.events.lastSeq > pinned.seq, "new events number on from the old");
  } finally {
    gpu.close();
  }
});

Deno.test("keep-alive - armed at every placement: an explicit load never used expires too (GPU, CPU, no GPU)", async () => {
  // issue 21 item 19: a model loaded with POST …/load and never used stayed loaded forever.
  const { clock, sim, scheduler } = world({ keepAliveMs: 3_000, idleAction: "unload" });
  await scheduler.load("a", "gpu");
  await scheduler.load("b", "cpu");
  for (const id of ["a", "b"]) {
    assert.equal(scheduler.model(id).keepAliveDeadline, clock.now() + 3_000, id);
  }
  await clock.tick(3_100);
  await scheduler.settled();
  assert.deepEqual([sim.placementOf("a"), sim.placementOf("b")], ["none", "none"]);
  assert.equal(scheduler.model("a").keepAliveDeadline, null, "unloaded: no countdown left");

  // Offloaded explicitly to the CPU, with idleAction unload: the countdown goes on there.
  await scheduler.load("a", "gpu");
  const loadedAt = clock.now();
  await clock.tick(1_000);
  await scheduler.offload("a");
  assert.equal(scheduler.model("a").keepAliveDeadline, loadedAt + 3_000, "idle since its load");

  // No GPU usable: the load lands on the CPU by policy, and is armed as well.
  const none = new SimGpu({
    totalBytes: 0,
    usable: false,
    pipelines: [{ id: "c", gpuBytes: MiB }],
  });
  const cpuOnly = schedulerOnSim(none, {
    keepAlive: () => ({ ms: 3_000, idleAction: "unload" }),
  });
  assert.equal((await cpuOnly.load("c", "gpu")).placement, "cpu");
  assert.equal(cpuOnly.model("c").keepAliveDeadline, none.clock.now() + 3_000);
  await none.clock.tick(3_100);
  await cpuOnly.settled();
  assert.equal(none.placementOf("c"), "none");
  scheduler.close();
  cpuOnly.close();
});
