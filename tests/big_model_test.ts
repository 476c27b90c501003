/**
 * Real-size models through their whole life, each in a fresh process (bench/big_model.ts)
 * so that process memory is the model's alone: a generated 1 GiB external-data model on
 * the native CPU engine and the software WebGPU adapter, and a 256 MiB one on the wasm
 * fallback. The model files live in a temp dir the script removes. Without a WebGPU
 * adapter the GPU legs are skipped with a warning, and fail when `CI` is set.
 * `HEADROOM_HEAVY=1` adds the 3 GiB variant.
 */
import assert from "node:assert/strict";
import type { BigModelRun, StepFigures } from "../bench/big_model.ts";
import { need, WEBGPU_INSTALL } from "./_requires.ts";

const MiB = 2 ** 20;
const ROOT = new URL("../", import.meta.url);

async function runScenario(args: string[]): Promise<BigModelRun> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--v8-flags=--wasm-tiering-budget=100000000",
      "--allow-all",
      "bench/big_model.ts",
      ...args,
    ],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  assert.equal(output.code, 0, `bench/big_model.ts ${args.join(" ")} failed:\n${stderr}`);
  return JSON.parse(new TextDecoder().decode(output.stdout));
}

function step(run: BigModelRun, name: string): StepFigures {
  const found = run.steps.find((s) => s.step === name);
  assert.ok(found, `step ${name} ran (${run.steps.map((s) => s.step).join(", ")})`);
  return found;
}

/** GPU legs need an adapter: skipped with a warning here, a failure on CI. */
function gpuLegsRan(run: BigModelRun): boolean {
  return need(run.gpu, `a WebGPU adapter for the GPU legs (${run.gpuSource})`, WEBGPU_INSTALL);
}

function assertOutputsAgree(run: BigModelRun): void {
  for (const s of run.steps.filter((s) => s.maxAbsDiff !== undefined)) {
    assert.ok(
      s.maxAbsDiff! <= 1e-3,
      `${s.step} on ${s.engine}: outputs differ from the first CPU run by ${s.maxAbsDiff}`,
    );
  }
}

function assertLifecycle(run: BigModelRun, cpuEngine: "native" | "wasm"): void {
  const weights = run.weightBytes;
  assert.equal(run.cpuEngine, cpuEngine, run.cpuEngineReason);
  const load = step(run, "load:cpu");
  assert.deepEqual([load.device, load.engine, load.gpuBytes], ["cpu", cpuEngine, 0]);
  if (cpuEngine === "native") {
    assert.equal(load.ramBytes, run.fileBytes, "RAM = the weights the native engine holds");
    // The engine maps the weights from the file: they become resident as the first run
    // touches them, once.
    const peak = Math.max(load.peakRssBytes, step(run, "run:cpu:first").peakRssBytes);
    assert.ok(
      peak - run.baselineRssBytes <= 1.3 * weights,
      `native load + first run: peak RSS +${(peak - run.baselineRssBytes) / MiB} MiB ` +
        `for ${weights / MiB} MiB of weights (≤ 1.3x)`,
    );
  } else {
    assert.ok(load.ramBytes >= weights, `wasm memory ${load.ramBytes} holds the weights`);
  }
  assertOutputsAgree(run);
  if (gpuLegsRan(run)) {
    for (const name of ["load:gpu", "rehydrate"]) {
      const s = step(run, name);
      assert.deepEqual([s.device, s.engine], ["gpu", "webgpu"], name);
      assert.ok(
        s.gpuBytes >= weights && s.gpuBytes <= weights * 1.01 + MiB,
        `${name}: tracked GPU bytes ${s.gpuBytes} ≈ weights ${weights}`,
      );
    }
    const offload = step(run, "offload");
    assert.deepEqual([offload.device, offload.engine, offload.gpuBytes], ["cpu", cpuEngine, 0]);
    assert.equal(step(run, "run:cpu:offloaded").engine, cpuEngine);
    assert.equal(step(run, "run:gpu:rehydrated").engine, "webgpu");
    if (cpuEngine === "native") {
      // On the software adapter the GPU's own copy of the weights is host memory too: the
      // rule is "never a third copy" — beyond that copy and the webgpu build (~300 MB,
      // see FACTS.md), at most 1.3x the weights at any moment.
      for (const name of ["load:gpu", "offload", "rehydrate"]) {
        const s = step(run, name);
        const beyond = s.peakRssBytes - run.baselineRssBytes - weights;
        assert.ok(
          beyond <= 1.3 * weights + 400 * MiB,
          `${name}: peak RSS ${s.peakRssBytes / MiB} MiB is ${beyond / MiB} MiB beyond the ` +
            `baseline and the GPU's copy (limit ${(1.3 * weights + 400 * MiB) / MiB} MiB)`,
        );
      }
    }
  }
  const unload = step(run, "unload");
  assert.deepEqual([unload.device, unload.engine, unload.gpuBytes, unload.ramBytes], [
    "none",
    null,
    0,
    0,
  ]);
  assert.equal(run.switched.status, "success", JSON.stringify(run.switched));
  assert.equal(run.switched.device, run.gpu ? "gpu" : "cpu");
  assert.ok((run.switched.ram_mb as number) > 0, `switch ram_mb ${run.switched.ram_mb}`);
  assert.equal(run.testLoad.placement, run.gpu ? "gpu" : "cpu", JSON.stringify(run.testLoad));
  assert.ok((run.testLoad.ramBytes as number) > 0, "test-load RAM: what the session holds");
  if (run.gpu) {
    assert.ok((run.testLoad.trackedBytes as number) >= weights, "test-load tracked the weights");
  }
  const settled = step(run, "settle");
  assert.ok(
    settled.rssBytes - run.baselineRssBytes <= 0.1 * weights + 200 * MiB,
    `RSS after unload ${settled.rssBytes / MiB} MiB, baseline ${run.baselineRssBytes / MiB} MiB`,
  );
}

Deno.test({
  name: "big model - 1 GiB external data: native CPU → GPU → offload → rehydrate → unload",
  fn: async () => {
    const run = await runScenario([
      "--size",
      "1GiB",
      "--cpu-engine",
      "auto",
      "--gpu",
      "--runs",
      "1",
    ]);
    assertLifecycle(run, "native");
  },
});

Deno.test({
  name: "big model - 256 MiB external data on the wasm fallback, the same lifecycle",
  fn: async () => {
    const run = await runScenario([
      "--size",
      "256MiB",
      "--cpu-engine",
      "wasm",
      "--gpu",
      "--runs",
      "1",
    ]);
    assertLifecycle(run, "wasm");
  },
});

Deno.test({
  name: "big model - 3 GiB external data on the native engine (HEADROOM_HEAVY=1)",
  ignore: !Deno.env.get("HEADROOM_HEAVY"),
  fn: async () => {
    const run = await runScenario([
      "--size",
      "3GiB",
      "--cpu-engine",
      "native",
      "--gpu",
      "--runs",
      "1",
    ]);
    assertLifecycle(run, "native");
  },
});
