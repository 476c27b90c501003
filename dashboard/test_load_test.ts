import assert from "node:assert/strict";
import type { TestLoadEvent } from "../core/placement/types.ts";
import { IDLE_RUN, stepRun, type TestRun } from "./test_load.ts";

Deno.test("stepRun() - marks each row as the test load's stream reports it", () => {
  const events: TestLoadEvent[] = [
    { event: "started", model: "a", index: 0, total: 2 },
    {
      event: "measured",
      model: "a",
      index: 0,
      total: 2,
      measurement: {
        model: "a",
        device: "cpu",
        placement: "cpu",
        vramBytes: 0,
        trackedBytes: 0,
        ramBytes: 7 * 2 ** 20,
        rssDeltaBytes: -3,
        rssBytes: 400 * 2 ** 20,
        engine: "native",
        ms: 420,
        vramBasis: "tracked",
      },
    },
    { event: "started", model: "b", index: 1, total: 2 },
  ];
  let run: TestRun = {
    ...IDLE_RUN,
    running: true,
    total: 2,
    rows: { a: { phase: "queued" }, b: { phase: "queued" } },
  };
  for (const event of events) run = stepRun(run, event);
  assert.deepEqual(run.rows, {
    a: { phase: "ok", text: "CPU: 420 ms, RAM 7.00 MiB" },
    b: { phase: "running" },
  });
  assert.deepEqual([run.current, run.total, run.running], [2, 2, true]);
  run = stepRun(run, { event: "error", model: "b", index: 1, total: 2, message: "oom" });
  const done: TestLoadEvent = {
    event: "done",
    total: 2,
    failed: 1,
    ms: 900,
    restored: [],
    notRestored: [],
    message: "",
  };
  run = stepRun(run, done);
  assert.deepEqual(run.rows.b, { phase: "error", message: "oom" });
  assert.deepEqual([run.running, run.done], [false, done]);
});
