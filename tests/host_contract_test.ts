/**
 * The PipelineHost contract, one suite run against every implementation (Hono's
 * router/common.case.test.ts idea): the model host the scheduler tests use (SimGpu), the
 * real PipelineManager over in-process worker doubles, and the real PipelineManager over
 * real Web Workers (a generated model on the CPU; the GPU cases where a WebGPU adapter is
 * there). What the scheduler relies on holds for each.
 */
import assert from "node:assert/strict";
import { EventLog } from "../core/events.ts";
import { loadCatalog } from "../core/models/catalog.ts";
import { parseSyntheticSize, planSyntheticModel } from "../core/models/synthetic.ts";
import { PipelineManager } from "../workers/manager.ts";
import { PipelineError } from "../core/pipelines/pipeline_error.ts";
import type { PipelineHost } from "../core/placement/types.ts";
import { QueueAbortedError } from "../core/serial_queue.ts";
import type { RunInput } from "../core/pipelines/protocol.ts";
import { MiB, SimGpu } from "./_sim_gpu.ts";
import { DoubleGpu } from "./_worker_double.ts";

interface Implementation {
  name: string;
  /** A host with pipelines "a" and "b", and the input a run of them takes. */
  make(): Promise<{ host: PipelineHost; input: () => RunInput; gpu: boolean } & AsyncDisposable>;
}

const EMPTY: RunInput = { kind: "tensors", tensors: {} };

const implementations: Implementation[] = [
  {
    name: "model host (SimGpu)",
    make: () => {
      const host = new SimGpu({
        totalBytes: 1024 * MiB,
        pipelines: [{ id: "a", gpuBytes: 64 * MiB }, { id: "b", gpuBytes: 32 * MiB }],
      });
      return Promise.resolve({
        host,
        input: () => EMPTY,
        gpu: true,
        [Symbol.asyncDispose]: () => Promise.resolve(),
      });
    },
  },
  {
    name: "PipelineManager (worker doubles)",
    make: () => {
      const double = new DoubleGpu({
        totalBytes: 1024 * MiB,
        pipelines: [{ id: "a", gpuBytes: 64 * MiB }, { id: "b", gpuBytes: 32 * MiB }],
      });
      return Promise.resolve({
        host: double.host,
        input: () => EMPTY,
        gpu: true,
        [Symbol.asyncDispose]: () => Promise.resolve(double.host.close()),
      });
    },
  },
  {
    name: "PipelineManager (real workers, CPU)",
    make: async () => {
      const dir = await Deno.makeTempDir({ prefix: "headroom-contract-" });
      const file = `${dir}/models.json`;
      await Deno.writeTextFile(
        file,
        JSON.stringify({
          models: [
            { id: "a", source: "synthetic:64KiB" },
            { id: "b", source: "synthetic:64KiB" },
          ],
        }),
      );
      const catalog = await loadCatalog(file, dir);
      const host = new PipelineManager({ catalog, events: new EventLog(), gpuAvailable: false });
      const { width } = planSyntheticModel(parseSyntheticSize("64KiB"));
      return {
        host,
        gpu: false,
        input: () => ({
          kind: "tensors",
          tensors: {
            input: { type: "float32", dims: [1, width], data: new Float32Array(width).fill(0.5) },
          },
        }),
        [Symbol.asyncDispose]: async () => {
          host.close();
          await Deno.remove(dir, { recursive: true });
        },
      };
    },
  },
];

const isCode = (code: string) => (error: unknown) =>
  error instanceof PipelineError && error.code === code;

for (const impl of implementations) {
  const test = (name: string, fn: () => Promise<void>) =>
    Deno.test({
      name: `PipelineHost contract (${impl.name}) - ${name}`,
      fn,
    });

  test("lists its pipelines; an unknown id has no view", async () => {
    await using t = await impl.make();
    assert.deepEqual(t.host.ids(), ["a", "b"]);
    assert.equal(t.host.view("nope"), undefined);
    assert.equal(t.host.view("a")!.placement, "none");
    assert.equal(t.host.trackedBytes(), 0);
  });

  test("a run of a pipeline that is not loaded answers not_loaded (the host never loads by itself)", async () => {
    await using t = await impl.make();
    await assert.rejects(() => t.host.run("a", t.input()), isCode("not_loaded"));
    assert.equal(t.host.view("a")!.placement, "none");
  });

  test("load on the CPU, run there, unload: placements and transitions as reported", async () => {
    await using t = await impl.make();
    const loaded = await t.host.load("a", "cpu");
    assert.equal(loaded.kind, "load:cpu");
    assert.equal(loaded.placement, "cpu");
    assert.equal(t.host.view("a")!.placement, "cpu");
    const again = await t.host.load("a", "cpu");
    assert.equal(again.kind, "none", "loading where it is moves nothing");
    const result = await t.host.run("a", t.input());
    assert.equal(result.device, "cpu");
    await assert.rejects(() => t.host.offload("b"), isCode("not_loaded"));
    assert.equal(
      (await t.host.offload("a")).kind,
      "none",
      "offloading a CPU pipeline moves nothing",
    );
    const unloaded = await t.host.unload("a");
    assert.equal(unloaded.placement, "none");
    assert.equal(t.host.view("a")!.placement, "none");
  });

  test("a run dropped by its signal while queued never runs", async () => {
    await using t = await impl.make();
    await t.host.load("a", "cpu");
    const gone = new AbortController();
    const first = t.host.run("a", t.input());
    const second = t.host.run("a", t.input(), { signal: gone.signal }).catch((error) => error);
    gone.abort(new Error("client went away"));
    // It answers at once, before the run ahead of it ends.
    assert.ok((await second) instanceof QueueAbortedError);
    await first;
  });

  test("replace ends the worker: the pipeline is not loaded, the next load works, others untouched", async () => {
    await using t = await impl.make();
    await t.host.load("a", "cpu");
    await t.host.load("b", "cpu");
    t.host.replace("a", "stuck (contract test)");
    await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(t.host.view("a")!.placement, "none");
    assert.equal(t.host.view("b")!.placement, "cpu");
    await t.host.load("a", "cpu");
    assert.equal((await t.host.run("a", t.input())).device, "cpu");
  });

  if (impl.name.includes("real workers")) continue;

  test("GPU: tracked bytes show on load, the running sum matches, offload releases them", async () => {
    await using t = await impl.make();
    assert.ok(t.gpu);
    await t.host.load("a", "gpu");
    await t.host.load("b", "gpu");
    const a = t.host.view("a")!.gpuBytes;
    const b = t.host.view("b")!.gpuBytes;
    assert.ok(a > 0 && b > 0);
    assert.equal(t.host.trackedBytes(), a + b);
    const off = await t.host.offload("a");
    assert.equal(off.kind, "offload");
    assert.equal(off.releasedBytes, a);
    assert.equal(t.host.view("a")!.placement, "cpu");
    assert.equal(t.host.trackedBytes(), b);
    const rehydrated = await t.host.load("a", "gpu");
    assert.equal(rehydrated.placement, "gpu");
    const unloaded = await t.host.unload("b");
    assert.equal(unloaded.releasedBytes, b);
    assert.equal(t.host.trackedBytes(), a);
  });
}
