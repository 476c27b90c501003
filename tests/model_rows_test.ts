/**
 * The one row shape of a model (ModelRow): what the scheduler puts in it (activity, the
 * actions its place allows), and that the server sends the same rows for
 * `GET /api/v1/models`, an action's answer, the VRAM report and its stream, which is all
 * the dashboard's table reads.
 * @module
 */
import assert from "node:assert/strict";
import { parseConfig } from "../core/config.ts";
import type { ModelRow, VramReport } from "../core/types.ts";
import { buildVramReport } from "../server/report.ts";
import { startService } from "../server/service.ts";
import { MiB, schedulerOnSim, SimGpu } from "./_sim_gpu.ts";

Deno.test("Scheduler.list() - each row carries its activity and the actions its place allows", () => {
  const pipelines = [
    { id: "on-gpu", gpuBytes: 4 * MiB, placement: "gpu" as const },
    { id: "on-cpu", gpuBytes: 4 * MiB, placement: "cpu" as const },
    { id: "parity", gpuBytes: 4 * MiB, placement: "cpu" as const, gpuMismatch: true },
    { id: "off", gpuBytes: 4 * MiB },
  ];
  const sim = new SimGpu({ totalBytes: 64 * MiB, pipelines });
  const scheduler = schedulerOnSim(sim);
  scheduler.pin("on-cpu", true);
  scheduler.markActive("on-gpu");
  const actions = (rows: ModelRow[]) => Object.fromEntries(rows.map((r) => [r.id, r.actions]));
  assert.deepEqual(actions(scheduler.list()), {
    "on-gpu": ["offload", "unload", "pin"],
    "on-cpu": ["load-gpu", "unload", "unpin"],
    parity: ["unload", "pin"],
    off: ["load-gpu", "load-cpu", "pin"],
  });
  const active = scheduler.model("on-gpu");
  assert.equal(active.activeCount, 1);
  assert.equal(active.takenAt, sim.clock.now());
  scheduler.markIdle("on-gpu");
  sim.clock.advance(5000);
  const idle = scheduler.model("on-gpu");
  assert.deepEqual([idle.activeCount, idle.idleMs, idle.idleAction], [0, 5000, "offload"]);
  assert.equal(scheduler.model("off").idleMs, 0, "never used");

  const noGpu = schedulerOnSim(new SimGpu({ totalBytes: 0, pipelines, usable: false }));
  assert.deepEqual(noGpu.model("off").actions, ["load-cpu", "pin"], "no GPU: no GPU load");
  assert.deepEqual(noGpu.model("on-cpu").actions, ["unload", "pin"]);
});

Deno.test("GET /api/v1/models, an action's answer, the VRAM report and its stream send the same rows", async () => {
  const dir = await Deno.makeTempDir({ prefix: "headroom_rows_test_" });
  const models = `${dir}/models.json`;
  await Deno.writeTextFile(
    models,
    JSON.stringify({
      models: [{ id: "tiny", source: "synthetic:64KiB" }, {
        id: "other",
        source: "synthetic:64KiB",
      }],
    }),
  );
  const result = parseConfig(["--gpu", "cpu", "--data-dir", dir, "--models", models], new Map());
  if (!("config" in result)) throw new Error("parseConfig printed help");
  const service = await startService(result.config);
  try {
    const { app } = service;
    const listed: ModelRow[] = (await (await app.request("/api/v1/models")).json()).models;
    assert.deepEqual(listed.map((m) => [m.id, m.actions]), [
      ["tiny", ["load-cpu", "pin"]],
      ["other", ["load-cpu", "pin"]],
    ]);
    const loaded = await app.request("/api/v1/models/tiny/load", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ device: "cpu" }),
    });
    const answer: ModelRow = await loaded.json();
    assert.deepEqual([answer.state, answer.actions], ["cpu", ["unload", "pin"]]);
    assert.ok(answer.takenAt >= listed[0].takenAt);

    const report: VramReport = await (await app.request("/api/v1/hardware/vram")).json();
    const again: ModelRow[] = (await (await app.request("/api/v1/models")).json()).models;
    assert.deepEqual(
      report.models!.map((m) => Object.keys(m).sort()),
      again.map((m) => Object.keys(m).sort()),
      "one shape",
    );
    assert.deepEqual(report.models!.map((m) => [m.id, m.state]), [["tiny", "cpu"], [
      "other",
      "unloaded",
    ]]);

    const stream = await app.request("/api/v1/hardware/vram/stream");
    const reader = stream.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes("\n\n")) text += (await reader.read()).value ?? "";
    await reader.cancel();
    const data = /event: snapshot\ndata: (.*)\n/.exec(text);
    assert.ok(data, text);
    const snapshot: VramReport = JSON.parse(data[1]);
    assert.deepEqual(snapshot.models!.map((m) => [m.id, m.state, m.actions]), [
      ["tiny", "cpu", ["unload", "pin"]],
      ["other", "unloaded", ["load-cpu", "pin"]],
    ]);

    // Models that cannot be listed leave the device figures going, and the page renders
    // its table empty (it fetches the rows, and says why when that fails).
    const scheduler = service.services.scheduler;
    const list = scheduler.list;
    scheduler.list = () => {
      throw new Error("profiles unreadable");
    };
    try {
      const body = buildVramReport(service.services); // what GET and each snapshot send
      assert.equal(body.models, undefined);
      assert.ok(body.scheduler && body.events, "the rest of the report is there");
      // A change (any event) makes the feed build a new report: the page renders from it.
      service.services.events.emit({ kind: "info", pipeline: null, message: "listing breaks" });
      const page = await app.request("/");
      assert.equal(page.status, 200);
      assert.match(await page.text(), /class="pipelines" data-status="loading"/);
    } finally {
      scheduler.list = list;
    }
  } finally {
    await service.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("model rows - modelBytes is known after a restart, before any load", async () => {
  // issue 21 item 15: it read null after a restart until the model was loaded again.
  const dir = await Deno.makeTempDir({ prefix: "headroom_rows_restart_" });
  const models = `${dir}/models.json`;
  await Deno.writeTextFile(
    models,
    JSON.stringify({ models: [{ id: "tiny", source: "synthetic:64KiB" }] }),
  );
  const start = async () => {
    const result = parseConfig(["--gpu", "cpu", "--data-dir", dir, "--models", models], new Map());
    if (!("config" in result)) throw new Error("parseConfig printed help");
    return await startService(result.config);
  };
  const row = async (service: Awaited<ReturnType<typeof start>>): Promise<ModelRow> =>
    await (await service.app.request("/api/v1/models/tiny")).json();
  try {
    const first = await start();
    let loadedBytes: number | null;
    try {
      await first.services.scheduler.load("tiny", "cpu");
      loadedBytes = (await row(first)).modelBytes;
      assert.ok(loadedBytes !== null && loadedBytes > 0, `${loadedBytes}`);
    } finally {
      await first.close();
    }
    const second = await start();
    try {
      const after = await row(second);
      assert.equal(after.state, "unloaded");
      assert.equal(after.modelBytes, loadedBytes);
    } finally {
      await second.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
