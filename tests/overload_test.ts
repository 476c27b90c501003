// Overload: 200 concurrent inference requests over six generated models on the
// software WebGPU adapter, with a VRAM budget that holds only a third of them (sized
// from one model's measured tracked bytes). Every request must be answered (200, or the
// documented 429 queue_full / 503), no worker may die, nothing may run out of memory,
// and once the load stops the tracked GPU bytes must be back under the budget.
// HEADROOM_HEAVY=1 sends 1,000 at once, then bursts that force evictions.
import assert from "node:assert/strict";
import { startService } from "../server/service.ts";
import { parseSyntheticSize, planSyntheticModel } from "../core/models/synthetic.ts";
import type { ModelRow } from "../core/types.ts";
import { testConfig } from "./_service.ts";
import { delay, jsonPost, writeArtifact, writeModelsFile } from "./fixtures/artifact.ts";
import { prng } from "../core/random.ts";
import { requireWebGpu } from "./_requires.ts";
import { tempDirSync } from "./_temp.ts";

// Skipped here without an adapter; a failure under CI.
const webgpu = await requireWebGpu();

const HEAVY = Deno.env.get("HEADROOM_HEAVY") === "1";
const SIZES = ["192KiB", "200KiB", "216KiB", "232KiB", "248KiB", "256KiB"];
const MODELS = SIZES.map((size, i) => ({ id: `load-${i}`, source: `synthetic:${size}` }));
const WIDTHS = new Map(
  MODELS.map((m, i) => [m.id, planSyntheticModel(parseSyntheticSize(SIZES[i])).width]),
);
/** Statuses a request under overload may get, besides 200 (see core/pipelines/pipeline_error.ts). */
const DOCUMENTED = new Set([200, 429, 503]);

function inferBody(id: string, random: () => number) {
  const width = WIDTHS.get(id)!;
  const rows = 1 + Math.floor(random() * 3);
  return {
    inputs: {
      input: {
        type: "float32",
        dims: [rows, width],
        data: Array.from({ length: rows * width }, () => random() - 0.5),
      },
    },
  };
}

Deno.test({
  name: "overload - 200 concurrent requests over a budget for a third of the models",
  ignore: !webgpu, // the sessions run on WebGPU (a software adapter is fine)
  fn: async () => {
    const seed = Number(Deno.env.get("HEADROOM_SEED") ?? Math.floor(Math.random() * 2 ** 31));
    const random = prng(seed);
    const dataDir = tempDirSync("headroom-overload-");
    const modelsFile = writeModelsFile(MODELS);
    const largest = MODELS.at(-1)!.id;

    // 1. Measure one model: the largest, alone on the GPU, with room to spare.
    let measuredBytes: number;
    {
      await using calibration = await startService(testConfig({
        gpu: "software",
        vramBudget: { kind: "bytes", bytes: 256 * 2 ** 20 },
        headroomBytes: 0,
        modelsFile,
        dataDir,
      }));
      assert.equal(calibration.services.monitor.sourceKind, "webgpu", "no adapter in the service");
      const loaded = await calibration.services.scheduler.load(largest, "gpu");
      assert.equal(loaded.state, "gpu");
      // Steady-state tracked bytes (a run briefly adds its activations on top).
      measuredBytes = loaded.gpuBytes;
      assert.ok(measuredBytes > 0, "the largest model's GPU bytes are tracked");
    }

    // 2. A budget for two of the six (the smallest is 3/4 of the largest: three never fit).
    const budget = Math.floor(measuredBytes * 2.2);
    await using service = await startService(testConfig({
      gpu: "software",
      vramBudget: { kind: "bytes", bytes: budget },
      headroomBytes: 0,
      sampleMs: 100,
      modelsFile,
      dataDir,
    }));
    const { app, services } = service;
    const tracked = () => service.host.trackedBytes();
    let peakTracked = 0;
    const watcher = setInterval(() => peakTracked = Math.max(peakTracked, tracked()), 10);

    const total = HEAVY ? 1000 : 200;
    const statuses: Record<string, number> = {};
    const unexpected: string[] = [];
    const perModel: Record<string, number> = {};
    const started = performance.now();
    const send = async (id: string) => {
      perModel[id] = (perModel[id] ?? 0) + 1;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const response = await Promise.race([
        app.request(`/api/v1/pipelines/${id}/infer`, jsonPost(inferBody(id, random))),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`seed ${seed}: a request on ${id} got no answer in time`)),
            HEAVY ? 600_000 : 40_000,
          );
        }),
      ]).finally(() => clearTimeout(timer));
      statuses[response.status] = (statuses[response.status] ?? 0) + 1;
      const body = await response.json();
      if (response.status === 200) {
        const rows = body.outputs.output.dims[0];
        assert.deepEqual(body.outputs.output.dims, [rows, WIDTHS.get(id)]);
      } else if (!DOCUMENTED.has(response.status)) {
        unexpected.push(`${id}: ${response.status} ${JSON.stringify(body)}`);
      } else {
        assert.equal(typeof body.error.message, "string");
      }
      return response.status;
    };
    // Wave 1: every request at once, spread over the six models.
    const wave1 = Array.from({ length: total }, () => MODELS[Math.floor(random() * 6)].id);
    const answered1 = await Promise.all(wave1.map(send));

    const wave1Ms = performance.now() - started;
    // Wave 2 (heavy only): bursts on one model at a time, so that idle models must be
    // evicted for busy ones. On the software adapter a GPU session created while other
    // workers use the adapter can stall for minutes (see the README), so the default
    // suite stops after wave 1.
    let answered2 = 0;
    if (HEAVY) {
      const order = [...MODELS.map((m) => m.id)].reverse();
      for (const id of [...order, ...order]) {
        const burst = await Promise.all(Array.from({ length: 10 }, () => send(id)));
        answered2 += burst.length;
      }
    }
    const loadMs = performance.now() - started;
    clearInterval(watcher);

    // The load stops: idle pipelines are moved off until the budget holds again.
    const settledAt = performance.now();
    while (tracked() > budget && performance.now() - settledAt < 5000) await delay(50);
    const settleMs = performance.now() - settledAt;
    const finalTracked = tracked();
    const events = services.events.recent(10_000);
    const died = events.filter((e) => e.kind === "failure");
    const ooms = events.filter((e) => e.kind === "oom");
    const evictions = events.filter((e) => e.kind === "eviction");
    const models: ModelRow[] = (await (await app.request("/api/v1/models")).json()).models;
    const onGpu = models.filter((m) => m.placement === "gpu").map((m) => m.id);
    await writeArtifact("overload", {
      seed,
      budgetBytes: budget,
      measuredModelBytes: measuredBytes,
      requestsSent: answered1.length + answered2,
      concurrentWave: total,
      perModel,
      statuses,
      unexpected,
      errors5xx: Object.entries(statuses).filter(([s]) => Number(s) >= 500)
        .reduce((n, [, c]) => n + c, 0),
      workersDied: died.length,
      oomEvents: ooms.length,
      evictions: evictions.length,
      peakTrackedBytes: peakTracked,
      finalTrackedBytes: finalTracked,
      modelsOnGpuAfter: onGpu,
      wave1Ms: Math.round(wave1Ms),
      loadMs: Math.round(loadMs),
      settleMs: Math.round(settleMs),
    });
    assert.equal(answered1.length + answered2, total + (HEAVY ? 120 : 0), "all answered");
    assert.deepEqual(unexpected, [], `seed ${seed}: undocumented statuses`);
    assert.ok((statuses[200] ?? 0) >= total / 2, `seed ${seed}: ${JSON.stringify(statuses)}`);
    assert.deepEqual(died.map((e) => e.message), [], "no worker died");
    assert.equal(statuses[507] ?? 0, 0, "nothing ran out of memory");
    assert.ok(
      finalTracked <= budget,
      `seed ${seed}: ${finalTracked} tracked GPU bytes after the load, budget ${budget}`,
    );
    assert.ok(onGpu.length <= 2, `only two fit, yet ${onGpu.join(", ")} are on the GPU`);
    assert.ok(onGpu.length >= 1, "the GPU was used");
    if (HEAVY) assert.ok(evictions.length > 0, "wave 2 made the policy evict idle models");
  },
});
