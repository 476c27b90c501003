/**
 * Real pipeline workers: wasm and webgpu sessions on generated models, moves between
 * GPU and CPU, bad input, dying workers, and a plugin. Needs `--unstable-worker-options`
 * (the workers run with narrowed permissions).
 */
import assert from "node:assert/strict";
import * as ort from "onnxruntime-web";
import { writeSyntheticModel } from "../core/models/synthetic.ts";
import { WorkerClient, WorkerDiedError, WorkerTimeoutError } from "../workers/client.ts";
import { installGpuTracker } from "../workers/gpu_tracker.ts";
import type {
  OkReply,
  PipelineSpec,
  RequestKind,
  WireTensor,
  WorkerReply,
} from "../core/pipelines/protocol.ts";
import { pipelineSpec } from "../workers/spec.ts";
import { requireWebGpu } from "./_requires.ts";

// Prefer lavapipe (Vulkan) over the GL backend: faster shader compiles, no crash at exit.
// Workers share this process's environment, so they see it too.
if (!Deno.env.get("DENO_WEBGPU_BACKEND")) {
  try {
    Deno.statSync("/usr/share/vulkan/icd.d/lvp_icd.x86_64.json");
    Deno.env.set("DENO_WEBGPU_BACKEND", "vulkan");
  } catch { /* no lavapipe: keep wgpu's default */ }
}

const adapter = await navigator.gpu?.requestAdapter().catch(() => null) ?? null;
// Skipped here without an adapter; a failure under CI.
const webgpu = await requireWebGpu();

interface Fixture {
  dir: string;
  spec: (overrides?: Partial<PipelineSpec>) => PipelineSpec;
  width: number;
}

async function withModel(
  bytes: number,
  width: number | undefined,
  fn: (fixture: Fixture) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "headroom-worker-" });
  try {
    const info = await writeSyntheticModel(`${dir}/model.onnx`, bytes, {
      width,
      seed: 3,
      externalData: false, // one file, so the main thread's checks can open it by path
    });
    const base = await pipelineSpec({
      modelId: "synthetic-test",
      modelPath: info.path,
      numThreads: 2,
    });
    await fn({
      dir,
      width: info.width,
      spec: (overrides = {}) => ({ ...base, ...overrides }),
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function input(batch: number, width: number, seed = 1): Float32Array {
  return Float32Array.from({ length: batch * width }, (_, i) => Math.sin(i * 0.37 + seed));
}

function outputOf(reply: WorkerReply<"run">): WireTensor {
  assert.ok(reply.ok, `run failed: ${!reply.ok && JSON.stringify(reply.error)}`);
  assert.equal(reply.output?.kind, "tensors");
  if (reply.output?.kind !== "tensors") throw new Error("unreachable");
  return reply.output.tensors.output;
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance: number) {
  assert.equal(actual.length, expected.length);
  let worst = 0;
  for (let i = 0; i < actual.length; i++) {
    worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
  }
  assert.ok(worst <= tolerance, `max abs difference ${worst} > ${tolerance}`);
}

function assertOk<K extends RequestKind>(
  reply: WorkerReply<K>,
  what: string,
): asserts reply is OkReply<K> {
  assert.ok(
    reply.ok,
    `${what} failed: ${!reply.ok && `${reply.error.code}: ${reply.error.message}`}`,
  );
}

Deno.test("pipeline worker - wasm session matches the main thread", async () => {
  await withModel(2 ** 20, undefined, async ({ spec, width }) => {
    const client = await WorkerClient.start(spec());
    try {
      assertOk(await client.load("cpu"), "load cpu");
      assert.equal(client.lastStatus.device, "cpu");
      assert.equal(client.lastStatus.build, "wasm");
      assert.equal(client.lastStatus.gpuBytes, 0);
      assert.deepEqual(client.lastStatus.inputs, [{
        name: "input",
        type: "float32",
        dims: ["N", width],
      }]);
      assert.deepEqual(client.lastStatus.outputs, [{
        name: "output",
        type: "float32",
        dims: ["N", width],
      }]);

      const session = await ort.InferenceSession.create(spec().modelPath);
      const expected = await session.run({
        input: new ort.Tensor("float32", input(3, width), [3, width]),
      });
      await session.release();

      const got = outputOf(
        await client.run({ input: { type: "float32", dims: [3, width], data: input(3, width) } }),
      );
      assert.equal(got.type, "float32");
      assert.deepEqual(got.dims, [3, width]);
      assertClose(got.data as Float32Array, expected.output.data as Float32Array, 1e-6);
    } finally {
      client.terminate();
    }
    assert.equal(await client.exited, "terminated");
  });
});

Deno.test({
  name: "pipeline worker - webgpu session tracks GPU bytes through offload and rehydrate",
  ignore: !webgpu,
  fn: async () => {
    await withModel(32 * 33 * 4 * 2, 32, async ({ spec, width }) => {
      const client = await WorkerClient.start(spec());
      try {
        const loaded = await client.load("gpu");
        assertOk(loaded, "load gpu");
        assert.equal(loaded.status.device, "gpu");
        assert.equal(loaded.status.build, "webgpu");
        assert.ok(loaded.status.gpuBytes >= 2 * (32 * 32 + 32) * 4, "weights are on the GPU");
        assert.ok(loaded.status.gpuBuffers > 0);

        const gpuOut = outputOf(
          await client.run({ input: { type: "float32", dims: [2, width], data: input(2, width) } }),
        );
        assert.deepEqual(gpuOut.dims, [2, width]);

        const offloaded = await client.offload();
        assertOk(offloaded, "offload");
        assert.equal(offloaded.status.device, "cpu");
        assert.equal(offloaded.status.gpuBytes, 0);
        assert.equal(offloaded.status.gpuBuffers, 0);
        const cpuOut = outputOf(
          await client.run({ input: { type: "float32", dims: [2, width], data: input(2, width) } }),
        );
        assertClose(cpuOut.data as Float32Array, gpuOut.data as Float32Array, 1e-4);

        const rehydrated = await client.rehydrate();
        assertOk(rehydrated, "rehydrate");
        assert.equal(rehydrated.status.device, "gpu");
        assert.ok(rehydrated.status.gpuBytes > 0);
        const again = outputOf(
          await client.run({ input: { type: "float32", dims: [2, width], data: input(2, width) } }),
        );
        assertClose(again.data as Float32Array, gpuOut.data as Float32Array, 1e-4);

        const unloaded = await client.unload();
        assertOk(unloaded, "unload");
        assert.equal(unloaded.status.device, "none");
        assert.equal(unloaded.status.gpuBytes, 0);
        const notLoaded = await client.run({
          input: { type: "float32", dims: [1, width], data: input(1, width) },
        });
        assert.equal(!notLoaded.ok && notLoaded.error.code, "not_loaded");
      } finally {
        client.terminate();
      }
      assert.equal(await client.exited, "terminated");
      assert.equal(client.alive, false);
    });
  },
});

Deno.test("pipeline worker - bad input is rejected naming the input", async () => {
  await withModel(64 * 1024, 16, async ({ spec, width }) => {
    const client = await WorkerClient.start(spec());
    try {
      assertOk(await client.load("cpu"), "load cpu");
      const cases: Array<[Record<string, WireTensor>, RegExp]> = [
        [
          { pixels: { type: "float32", dims: [1, width], data: input(1, width) } },
          /"pixels".*expected "input"/,
        ],
        [
          { input: { type: "float32", dims: [1, width + 1], data: input(1, width + 1) } },
          /"input".*\[1, 17\].*\[N, 16\]/,
        ],
        [
          { input: { type: "float32", dims: [width], data: input(1, width) } },
          /"input".*dims \[16\]/,
        ],
        [
          { input: { type: "int32", dims: [1, width], data: new Int32Array(width) } },
          /"input".*int32.*float32/,
        ],
        [
          { input: { type: "float32", dims: [2, width], data: input(1, width) } },
          /"input".*16 elements.*32/,
        ],
        [{}, /Missing input "input"/],
      ];
      for (const [tensors, pattern] of cases) {
        const reply = await client.run(tensors);
        assert.equal(reply.ok, false);
        if (reply.ok) continue;
        assert.equal(reply.error.code, "bad_tensor");
        assert.match(reply.error.message, pattern);
      }
      // The worker still serves after bad input.
      outputOf(
        await client.run({ input: { type: "float32", dims: [1, width], data: input(1, width) } }),
      );
    } finally {
      client.terminate();
    }
  });
});

Deno.test("pipeline worker - requests run one at a time, in order", async () => {
  await withModel(64 * 1024, 16, async ({ spec, width }) => {
    const client = await WorkerClient.start(spec());
    try {
      // Not awaited in between: the run must wait for the load queued before it.
      const [load, run, status] = await Promise.all([
        client.load("cpu"),
        client.run({ input: { type: "float32", dims: [1, width], data: input(1, width) } }),
        client.status(),
      ]);
      assertOk(load, "load");
      assert.deepEqual(outputOf(run).dims, [1, width]);
      assert.equal(status.status.device, "cpu");
      assert.ok(load.id < run.id && run.id < status.id);
    } finally {
      client.terminate();
    }
  });
});

Deno.test("pipeline worker - a missing model fails start with load_failed", async () => {
  await withModel(64 * 1024, 16, async ({ spec, dir }) => {
    await assert.rejects(
      WorkerClient.start(spec({ modelPath: `${dir}/nope.onnx` })),
      /load_failed.*nope\.onnx/,
    );
  });
});

const pluginUrl = new URL("./fixtures/double_sum_plugin.ts", import.meta.url).href;

Deno.test("pipeline worker - a plugin runs through pluginUrl", async () => {
  await withModel(64 * 1024, 4, async ({ spec, dir, width }) => {
    await Deno.writeTextFile(`${dir}/note.txt`, "hello");
    const client = await WorkerClient.start(
      spec({ pluginUrl, assets: { note: `${dir}/note.txt` } }),
    );
    try {
      assertOk(await client.load("cpu"), "load");
      const values = [1, 2, 3, 4].slice(0, width);
      const reply = await client.run({ kind: "plugin", payload: { values } });
      assertOk(reply, "plugin run");
      assert.equal(reply.output?.kind, "plugin");
      const payload = reply.output?.payload as { sum: number; dims: number[]; noteBytes: number };

      const session = await ort.InferenceSession.create(spec().modelPath);
      const data = Float32Array.from(values, (v) => 2 * v);
      const expected = await session.run({ input: new ort.Tensor("float32", data, [1, width]) });
      await session.release();
      const sum = (expected.output.data as Float32Array).reduce((a, b) => a + b, 0);
      assert.ok(Math.abs(payload.sum - sum) < 1e-5, `${payload.sum} vs ${sum}`);
      assert.deepEqual(payload.dims, [1, width]);
      assert.equal(payload.noteBytes, 5);

      const bad = await client.run({ kind: "plugin", payload: { values: "nope" } });
      assert.equal(!bad.ok && bad.error.code, "bad_input");
      assert.match(!bad.ok ? bad.error.message : "", /values must be an array/);
    } finally {
      client.terminate();
    }
  });
});

Deno.test("pipeline worker - terminate during a run rejects it with WorkerDiedError", async () => {
  await withModel(64 * 1024, 4, async ({ spec }) => {
    const client = await WorkerClient.start(spec({ pluginUrl }));
    assertOk(await client.load("cpu"), "load");
    const pending = client.run({ kind: "plugin", payload: { hang: true } });
    const exits: string[] = [];
    client.onExit((reason) => exits.push(reason));
    client.terminate("shutting down");
    await assert.rejects(pending, (error: Error) => {
      assert.ok(error instanceof WorkerDiedError);
      assert.match(error.message, /shutting down/);
      return true;
    });
    assert.deepEqual(exits, ["shutting down"]);
    await assert.rejects(client.status(), WorkerDiedError);
  });
});

Deno.test("pipeline worker - a worker that crashes rejects its pending run; its log is one line", async () => {
  // What the host echoes of the plugin's output: the uncaught error once, no stack after it.
  const logged: string[] = [];
  const consoleError = console.error;
  console.error = (...args: unknown[]) => void logged.push(args.join(" "));
  await withModel(64 * 1024, 4, async ({ spec }) => {
    const client = await WorkerClient.start(spec({ pluginUrl }));
    try {
      assertOk(await client.load("cpu"), "load");
      await assert.rejects(
        client.run({ kind: "plugin", payload: { crash: true } }),
        (error: Error) => {
          assert.ok(error instanceof WorkerDiedError);
          assert.match(error.message, /crashed on purpose/);
          return true;
        },
      );
      assert.match(await client.exited, /crashed on purpose/);
      assert.equal(client.lastStatus.device, "none");
      const crashLines = logged.filter((line) => line.startsWith("[plugin "));
      assert.equal(crashLines.length, 1, crashLines.join("\n"));
      assert.match(crashLines[0], /error: Uncaught Error: double_sum_plugin crashed on purpose/);
    } finally {
      console.error = consoleError;
      client.terminate();
    }
  });
});

Deno.test("pipeline worker - a step past its deadline ends the worker and its plugin process, rejecting with WorkerTimeoutError", async () => {
  await withModel(64 * 1024, 4, async ({ spec }) => {
    const client = await WorkerClient.start(spec({ pluginUrl }), { stepTimeoutMs: 6_000 });
    const pluginPid = client.pluginPid;
    assert.ok(pluginPid !== null, "the plugin runs in a process of its own");
    try {
      assertOk(await client.load("cpu"), "load");
      const started = performance.now();
      await assert.rejects(
        client.run({ kind: "plugin", payload: { hang: true } }),
        (error: Error) => {
          assert.ok(error instanceof WorkerTimeoutError, String(error));
          assert.match(error.message, /did not finish run within 6000 ms/);
          return true;
        },
      );
      assert.ok(performance.now() - started < 12_000, "rejected by the deadline");
      assert.equal(client.alive, false);
      assert.match(await client.exited, /did not finish run/);
      // The plugin's process is gone too (a signal 0 to a reaped pid fails).
      const deadline = performance.now() + 3_000;
      let gone = false;
      while (!gone && performance.now() < deadline) {
        try {
          Deno.kill(pluginPid, "SIGCONT");
          await new Promise((resolve) => setTimeout(resolve, 50));
        } catch {
          gone = true;
        }
      }
      assert.ok(gone, "the plugin process was ended");
    } finally {
      client.terminate();
    }
  });
});

Deno.test({
  name: "gpu tracker - counts each buffer once and frees a destroyed device's buffers",
  ignore: !webgpu,
  fn: async () => {
    const tracker = installGpuTracker();
    assert.ok(tracker);
    assert.equal(installGpuTracker(), tracker, "installed once");
    const device = await adapter!.requestDevice();
    const before = { buffers: tracker.buffers, bytes: tracker.bytes };
    tracker.resetPeak();
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST;
    const a = device.createBuffer({ size: 1024, usage });
    const b = device.createBuffer({ size: 4096, usage });
    assert.equal(tracker.buffers - before.buffers, 2);
    assert.equal(tracker.bytes - before.bytes, 5120);
    a.destroy();
    a.destroy();
    assert.equal(tracker.bytes - before.bytes, 4096, "destroy twice counts once");
    assert.equal(tracker.peakBytes - before.bytes, 5120);
    device.createBuffer({ size: 256, usage });
    device.destroy();
    assert.equal(tracker.buffers, before.buffers, "a destroyed device frees its buffers");
    assert.equal(tracker.bytes, before.bytes);
    b.destroy();
    assert.equal(tracker.bytes, before.bytes);
  },
});
