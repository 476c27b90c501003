// `deno task pressure` as a person runs it: a subprocess allocating through the CUDA
// runtime of the driver test double, whose state lives in a file this test attaches to,
// so the test sees the other tenant's bytes come and go; and once against a Headroom
// server subprocess on the same double.
import assert from "node:assert/strict";
import { startServerProcess } from "../scripts/_lib/server_process.ts";
import { FAKE_GPU_PATH, FakeGpu, GiB } from "./fake_gpu.ts";
import { requireWebGpu } from "./_requires.ts";

// Skipped here without an adapter; a failure under CI.
const webgpu = await requireWebGpu();

const ROOT = new URL("../", import.meta.url).pathname;
const SCRIPT = new URL("../scripts/pressure.ts", import.meta.url).pathname;

/** A finished run of the tool. */
interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Spawns the tool; `during` runs while it is alive (it gets the child). */
async function runPressure(
  args: string[],
  env: Record<string, string>,
  during?: (child: Deno.ChildProcess) => Promise<void>,
): Promise<Run> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", SCRIPT, ...args],
    cwd: ROOT,
    env,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stdout = new Response(child.stdout).text();
  const stderr = new Response(child.stderr).text();
  try {
    if (during) await during(child);
  } catch (error) {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
    await child.status;
    throw error;
  }
  const status = await child.status;
  return { code: status.code, stdout: await stdout, stderr: await stderr };
}

/** Polls `read` every 20 ms until `ok` holds (or fails after `timeoutMs`). */
async function waitFor<T>(
  what: string,
  read: () => T | Promise<T>,
  ok: (value: T) => boolean,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const value = await read();
    if (ok(value)) return value;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}; last: ${value}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A private copy of the double attached to a fresh state file, and the env to share it. */
function sharedDouble() {
  const dir = Deno.makeTempDirSync({ prefix: "headroom-pressure-" });
  const statePath = `${dir}/fakegpu.state`;
  const gpu = new FakeGpu({ isolate: true, statePath });
  const env = { HEADROOM_CUDART_LIBRARY: FAKE_GPU_PATH, FAKE_GPU_STATE: statePath };
  return {
    gpu,
    dir,
    env,
    [Symbol.dispose]() {
      gpu.close();
      Deno.removeSync(dir, { recursive: true });
    },
  };
}

Deno.test("pressure - holds 2 GiB that another process sees, then frees it all", async () => {
  using double = sharedDouble();
  const { gpu } = double;
  assert.equal(gpu.used(0), 0);
  let seenWhileHolding = 0;
  const run = await runPressure(["--gib", "2", "--hold", "1", "--json"], double.env, async () => {
    seenWhileHolding = await waitFor("2 GiB held", () => gpu.used(0), (used) => used >= 2 * GiB);
  });
  assert.equal(run.code, 0, run.stderr);
  assert.equal(seenWhileHolding, 2 * GiB);
  assert.equal(gpu.used(0), 0, "everything is back after it exits");
  assert.equal(gpu.callCount("cudaMalloc"), 2, "1 GiB steps");
  assert.equal(gpu.callCount("cudaFree"), 2, "it freed each allocation itself");
  const result = JSON.parse(run.stdout);
  assert.equal(result.tool, "pressure");
  assert.equal(result.requestedBytes, 2 * GiB);
  assert.equal(result.heldBytes, 2 * GiB);
  assert.equal(result.freedBytes, 2 * GiB);
  assert.equal(result.allocations, 2);
  assert.equal(result.allocationError, null);
  assert.equal(result.endedBy, "hold");
  assert.ok(result.heldSeconds >= 1, `held ${result.heldSeconds} s`);
  assert.deepEqual(result.cuda.before, { freeBytes: 8 * GiB, totalBytes: 8 * GiB });
  assert.deepEqual(result.cuda.holding, { freeBytes: 6 * GiB, totalBytes: 8 * GiB });
  assert.deepEqual(result.cuda.after, { freeBytes: 8 * GiB, totalBytes: 8 * GiB });
  assert.equal(result.service, null);
});

Deno.test("pressure - asking past the device reports cudaErrorMemoryAllocation and holds what fit", async () => {
  using double = sharedDouble();
  const { gpu } = double;
  gpu.setOtherUsed(0, GiB / 4); // 7.75 GiB free: the last GiB step fails, smaller pieces fit
  const run = await runPressure(["--gib", "100", "--hold", "0.2", "--json"], double.env);
  assert.equal(run.code, 0, run.stderr);
  const result = JSON.parse(run.stdout);
  assert.equal(result.allocationError.name, "cudaErrorMemoryAllocation");
  assert.equal(result.allocationError.code, 2);
  assert.equal(result.allocationError.atBytes, 7 * GiB);
  assert.equal(result.heldBytes, 7.75 * GiB, "1 GiB pieces, then halves down to 64 MiB");
  assert.equal(result.cuda.holding.freeBytes, 0);
  assert.equal(result.freedBytes, result.heldBytes);
  assert.match(run.stderr, /cudaErrorMemoryAllocation after 7\.00 GiB of 100\.00 GiB/);
  assert.equal(gpu.used(0), GiB / 4);
});

Deno.test("pressure - SIGINT while holding frees everything and exits 0", async () => {
  using double = sharedDouble();
  const { gpu } = double;
  const run = await runPressure(["--gib", "1.5", "--json"], double.env, async (child) => {
    await waitFor("1.5 GiB held", () => gpu.used(0), (used) => used >= 1.5 * GiB);
    child.kill("SIGINT");
  });
  assert.equal(run.code, 0, run.stderr);
  const result = JSON.parse(run.stdout);
  assert.equal(result.endedBy, "SIGINT");
  assert.equal(result.heldBytes, 1.5 * GiB);
  assert.equal(result.freedBytes, 1.5 * GiB);
  assert.equal(gpu.callCount("cudaFree"), 2, "1 GiB + 0.5 GiB, both freed by the tool");
  assert.equal(gpu.used(0), 0);
});

Deno.test("pressure - --help exits 0; bad flags exit 2 naming the flag", async () => {
  const help = await runPressure(["--help"], {});
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Usage: deno task pressure --gib N/);
  assert.match(help.stdout, /--hold S/);
  const cases: Array<[string[], RegExp]> = [
    [["--gib", "2", "--bogus"], /--bogus/],
    [["--gib", "lots"], /--gib: "lots" is not a number/],
    [["--gib", "0"], /--gib: "0" is out of range/],
    [[], /--gib: required/],
    [["--gib", "1", "--hold=-1"], /--hold: "-1" is out of range/],
    [["--gib", "1", "--device", "1.5"], /--device: "1.5" is not a whole number/],
    [["--gib", "1", "--url", "not a url"], /--url: "not a url" is not a URL/],
  ];
  for (const [args, message] of cases) {
    const run = await runPressure(args, {});
    assert.equal(run.code, 2, `${args.join(" ")}: ${run.stderr}`);
    assert.match(run.stderr, message);
  }
});

Deno.test("pressure - a Headroom server on the double shows the pressure while the tool holds", async () => {
  using double = sharedDouble();
  const { gpu } = double;
  const server = await startServerProcess({
    args: ["run", "--allow-all", `${ROOT}main.ts`, "--port", "0"],
    cwd: ROOT,
    env: {
      HEADROOM_NVML_LIBRARY: FAKE_GPU_PATH,
      FAKE_GPU_STATE: double.env.FAKE_GPU_STATE,
      HEADROOM_DATA_DIR: double.dir,
      HEADROOM_SAMPLE_MS: "100",
    },
  });
  const { url } = server;
  try {
    const used = async () =>
      (await (await fetch(`${url}/api/v1/hardware/vram`)).json()).devices[0].usedBytes as number;
    assert.equal(await used(), 0);

    const run = await runPressure(
      ["--gib", "3", "--hold", "2", "--settle", "0.5", "--url", url, "--json"],
      double.env,
      async () => {
        await waitFor("the server to see 3 GiB used", used, (bytes) => bytes === 3 * GiB);
      },
    );
    assert.equal(run.code, 0, run.stderr);
    assert.equal(gpu.used(0), 0);
    const result = JSON.parse(run.stdout);
    assert.equal(result.heldBytes, 3 * GiB);
    assert.equal(result.service.url, url);
    assert.equal(result.service.before.source, "nvml");
    assert.equal(result.service.before.device.usedBytes, 0);
    assert.equal(result.service.peakUsedBytes, 3 * GiB);
    assert.equal(result.service.holding.device.usedBytes, 3 * GiB);
    assert.equal(result.service.after.device.usedBytes, 0);
    assert.ok(Array.isArray(result.service.events));
    assert.deepEqual(result.service.errors, []);
    await waitFor("the server to see it freed", used, (bytes) => bytes === 0);
  } finally {
    await server.stop();
  }
});

Deno.test({
  name:
    "pressure - the README demo: models on the GPU, 7.5 GiB held on the default 8 GiB double, evictions and no false leak",
  ignore: !webgpu, // the sessions run on WebGPU (a software adapter is fine)
  fn: async () => {
    using double = sharedDouble();
    await Deno.writeTextFile(
      `${double.dir}/models.json`,
      JSON.stringify({
        models: [
          { id: "small", source: "synthetic:1MiB" },
          { id: "big", source: "synthetic:17MiB" }, // over the 16 MiB the leak check needs
        ],
      }),
    );
    const server = await startServerProcess({
      args: ["run", "--allow-all", `${ROOT}main.ts`, "--port", "0"],
      cwd: ROOT,
      env: {
        HEADROOM_NVML_LIBRARY: FAKE_GPU_PATH,
        FAKE_GPU_STATE: double.env.FAKE_GPU_STATE,
        HEADROOM_DATA_DIR: double.dir,
        HEADROOM_MODELS: `${double.dir}/models.json`,
        HEADROOM_SAMPLE_MS: "100",
      },
    });
    const { url } = server;
    try {
      for (const id of ["small", "big"]) {
        const response = await fetch(`${url}/api/v1/models/${id}/load`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ device: "gpu" }),
        });
        const body = await response.json();
        assert.equal(response.status, 200, JSON.stringify(body));
        assert.equal(body.placement, "gpu", id);
      }
      const run = await runPressure(
        ["--gib", "7.5", "--hold", "2", "--settle", "0.5", "--url", url],
        double.env,
      );
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /Events meanwhile: eviction [12]\b/, run.stdout);
      assert.match(run.stdout, /evicted (big|small) .* to restore the headroom/);
      // The double cannot show the release (issue 21 item 5): the demo prints that it
      // counted the bytes as freed instead of evicting more for the same shortfall.
      assert.match(run.stdout, /(big|small): the driver cannot show its .* release/);
      assert.doesNotMatch(run.stdout, /No eviction/);
      // The double never saw the sessions' memory (software adapter): no false leak.
      await new Promise((resolve) => setTimeout(resolve, 2500)); // past the 2 s release wait
      const models = (await (await fetch(`${url}/api/v1/models`)).json()).models;
      for (const model of models) {
        assert.equal(model.placement, "cpu", model.id);
        assert.equal(model.leak, null, `${model.id}: ${model.leak}`);
      }
    } finally {
      await server.stop();
    }
  },
});

Deno.test("pressure - with nothing evicted it says why and how much more to hold", async () => {
  const { whyNoEviction } = await import("../scripts/pressure.ts");
  const view = (free: number, onGpu: string[]) => ({
    takenAt: 0,
    source: "nvml",
    device: {
      index: 0,
      name: "x",
      totalBytes: 8 * GiB,
      usedBytes: 8 * GiB - free,
      freeBytes: free,
    },
    pipelinesOnGpu: onGpu,
    pipelineGpuBytes: 0,
    budgetBytes: 8 * GiB,
    headroomBytes: 0.8 * GiB,
  });
  const service = (before: ReturnType<typeof view>, holding: ReturnType<typeof view>) =>
    // deno-lint-ignore no-explicit-any
    ({ url: "http://h", before, holding, after: before, eventCounts: {}, events: [] }) as any;
  assert.match(
    whyNoEviction(service(view(8 * GiB, []), view(5 * GiB, [])))!,
    /no pipeline was on the GPU to evict/,
  );
  assert.match(
    whyNoEviction(service(view(8 * GiB, ["a"]), view(5 * GiB, ["a"])))!,
    /free VRAM \(5\.00 GiB\) stayed above the 0\.80 GiB headroom\. Hold more than 4\.20 GiB more/,
  );
  const evicted = {
    ...service(view(8 * GiB, ["a"]), view(0.5 * GiB, [])),
    eventCounts: { eviction: 1 },
  };
  assert.equal(whyNoEviction(evicted), null);
});
