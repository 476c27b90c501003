/**
 * The CPU engine choice: `auto` picks onnxruntime-node's native CPU EP when its addon
 * loads, falls back to onnxruntime-web's wasm EP with the reason when it does not,
 * `native` that cannot load stops the start, and the choice shows in the VRAM report
 * and per pipeline; the native engine's threads do not spin once a run has returned.
 */
import assert from "node:assert/strict";
import { dirname } from "node:path";
import { startService } from "../server/service.ts";
import type { ModelRow, VramReport } from "../core/types.ts";
import { CpuEngineError, DEFAULT_ORT_NODE_DIR } from "../workers/engines/choose.ts";
import { addonDir } from "../workers/engines/native.ts";
import { testConfig } from "./_service.ts";
import { processCpuMs } from "../workers/process_figures.ts";

/** A models file and a data dir in one temp dir, removed when the test's `using` ends. */
function fixture(): { modelsFile: string; dataDir: string; [Symbol.dispose](): void } {
  const dir = Deno.makeTempDirSync({ prefix: "headroom-engine-" });
  Deno.writeTextFileSync(
    `${dir}/models.json`,
    JSON.stringify({ models: [{ id: "tiny", source: "synthetic:256KiB" }] }),
  );
  return {
    modelsFile: `${dir}/models.json`,
    dataDir: `${dir}/data`,
    [Symbol.dispose]: () => Deno.removeSync(dir, { recursive: true }),
  };
}

/**
 * A copy of onnxruntime-node whose addon is not a shared library (as after a broken or
 * cross-platform install): its JavaScript loads, `require` of the addon fails.
 */
function brokenOrtNode(): { dir: string; [Symbol.dispose](): void } {
  const root = Deno.makeTempDirSync({ prefix: "headroom-broken-ort-" });
  const real = Deno.realPathSync(DEFAULT_ORT_NODE_DIR);
  const dir = `${root}/node_modules/onnxruntime-node`;
  Deno.mkdirSync(addonDir(dir), { recursive: true });
  Deno.copyFileSync(`${real}/package.json`, `${dir}/package.json`);
  Deno.mkdirSync(`${dir}/dist`);
  for (const entry of Deno.readDirSync(`${real}/dist`)) {
    if (entry.isFile) Deno.copyFileSync(`${real}/dist/${entry.name}`, `${dir}/dist/${entry.name}`);
  }
  Deno.writeTextFileSync(`${addonDir(dir)}/onnxruntime_binding.node`, "not a shared library\n");
  // Its own dependency resolves as in a real install.
  Deno.symlinkSync(
    Deno.realPathSync(`${dirname(real)}/onnxruntime-common`),
    `${root}/node_modules/onnxruntime-common`,
  );
  return { dir, [Symbol.dispose]: () => Deno.removeSync(root, { recursive: true }) };
}

async function loadOnCpu(service: Awaited<ReturnType<typeof startService>>): Promise<ModelRow> {
  const response = await service.app.request("/api/v1/models/tiny/load", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ device: "cpu" }),
  });
  assert.equal(response.status, 200, await response.clone().text());
  return await response.json();
}

Deno.test({
  name: "cpu engine - auto picks the native engine, says why, and pipelines run on it",
  fn: async () => {
    using files = fixture();
    await using service = await startService(testConfig({
      gpu: "cpu",
      ...files,
      cpuThreads: 2,
    }));
    const report: VramReport = await (await service.app.request("/api/v1/hardware/vram")).json();
    assert.equal(report.cpuEngine?.configured, "auto");
    assert.equal(report.cpuEngine?.engine, "native");
    assert.equal(report.cpuEngine?.threads, 2);
    assert.match(report.cpuEngine!.reason, /onnxruntime-node's CPU EP loaded from .* ran a probe/);
    const loaded = await loadOnCpu(service);
    assert.deepEqual([loaded.state, loaded.engine], ["cpu", "native"]);
    assert.equal(loaded.ramBytes, loaded.modelBytes, "RAM = the weights the engine holds");
    assert.ok(loaded.modelBytes! > 256 * 1024);
    const placement =
      (await (await service.app.request("/api/v1/hardware/vram")).json() as VramReport)
        .models!.find((p) => p.id === "tiny")!;
    assert.deepEqual([placement.engine, placement.ramBytes], ["native", loaded.ramBytes]);
  },
});

Deno.test({
  name: "cpu engine - a broken onnxruntime-node addon falls back to wasm with the reason",
  fn: async () => {
    using broken = brokenOrtNode();
    using files = fixture();
    await using service = await startService(testConfig({
      gpu: "cpu",
      ...files,
      ortNodeDir: broken.dir,
    }));
    const report: VramReport = await (await service.app.request("/api/v1/hardware/vram")).json();
    assert.equal(report.cpuEngine?.engine, "wasm");
    assert.match(report.cpuEngine!.reason, /onnxruntime-node could not load/);
    assert.match(report.cpuEngine!.reason, /onnxruntime_binding\.node/, "names the file");
    assert.match(report.cpuEngine!.reason, /wasm EP serves the CPU instead/);
    const loaded = await loadOnCpu(service);
    assert.deepEqual([loaded.state, loaded.engine], ["cpu", "wasm"]);
    assert.ok(loaded.ramBytes >= 256 * 1024, `wasm memory ${loaded.ramBytes} holds the model`);
  },
});

Deno.test({
  name: "cpu engine - native asked for and not loadable stops the start with the fix",
  fn: async () => {
    using broken = brokenOrtNode();
    using files = fixture();
    await assert.rejects(
      () =>
        startService(
          testConfig({ gpu: "cpu", cpuEngine: "native", ortNodeDir: broken.dir, ...files }),
        ),
      (error: Error) => {
        assert.ok(error instanceof CpuEngineError);
        assert.match(error.message, /HEADROOM_CPU_ENGINE=native, but onnxruntime-node cannot run/);
        assert.match(error.message, /HEADROOM_CPU_ENGINE=auto/);
        return true;
      },
    );
  },
});

Deno.test({
  name: "cpu engine - wasm when configured, without probing the addon",
  fn: async () => {
    using files = fixture();
    await using service = await startService(testConfig({
      gpu: "cpu",
      ...files,
      cpuEngine: "wasm",
      ortNodeDir: "/nonexistent/onnxruntime-node",
    }));
    const report: VramReport = await (await service.app.request("/api/v1/hardware/vram")).json();
    assert.deepEqual([report.cpuEngine?.engine, report.cpuEngine?.configured], ["wasm", "wasm"]);
    assert.match(report.cpuEngine!.reason, /as configured/);
    assert.equal((await loadOnCpu(service)).engine, "wasm");
  },
});

Deno.test({
  name:
    "cpu engine - switch and /api/v1/models report the session's RAM, never negative, RSS apart",
  fn: async () => {
    using files = fixture();
    await using service = await startService(testConfig({ gpu: "cpu", ...files }));
    const response = await service.app.request("/v1/models/switch", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny" }),
    });
    assert.equal(response.status, 200, await response.clone().text());
    const result = await response.json();
    const model: ModelRow = await (await service.app.request("/api/v1/models/tiny")).json();
    assert.deepEqual([result.device, result.engine], ["cpu", "native"]);
    assert.equal(result.ram_mb, Math.round(model.modelBytes! / 1e5) / 10, "the weights it holds");
    assert.ok(result.rss_mb > result.ram_mb, "the whole process's RSS, reported apart");
    assert.equal(model.ramBytes, model.modelBytes);
    assert.ok(model.rssBytes > model.ramBytes);
  },
});

Deno.test({
  name: "cpu engine - native: the engine's threads stop spinning when a run returns",
  // The probe reads its CPU time from /proc.
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    // In its own process, so that only the probe's threads count.
    const probe = new URL("./fixtures/engine_idle_probe.ts", import.meta.url);
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", probe.pathname],
      cwd: new URL("../", import.meta.url).pathname,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(stderr);
    assert.equal(code, 0, err);
    const { cpuMsPerRun } = JSON.parse(new TextDecoder().decode(stdout));
    // A run of the 1 MiB model takes well under 1 ms of CPU; threads that kept spinning after
    // it (onnxruntime's default, no `force_spinning_stop`) measured ~31 ms per run here.
    assert.ok(cpuMsPerRun < 10, `${cpuMsPerRun} ms of CPU per run, 50 ms apart: threads spin idle`);
  },
});

Deno.test({
  name: "cpu engine - processCpuMs counts the CPU time of every thread of a process",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    // A child that keeps one worker thread busy for 1.5 s while its main thread sleeps (its start
    // costs ~0.1 s of CPU; another test on the other core takes at most half the spin).
    const code = `const w = new Worker(URL.createObjectURL(new Blob([
      "const t = performance.now(); while (performance.now() - t < 1500) {} postMessage(0);"
    ], { type: "application/javascript" })), { type: "module" });
    w.onmessage = () => { console.log("done"); setTimeout(() => {}, 60_000); };`;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["eval", code],
      stdout: "piped",
      stderr: "null",
    }).spawn();
    try {
      const reader = child.stdout.getReader();
      await reader.read(); // "done": the worker has spun
      reader.releaseLock();
      const ms = processCpuMs(child.pid);
      assert.ok(ms !== null && ms >= 600, `${ms} ms of CPU after a worker spun 1.5 s`);
      assert.ok(ms! < 10_000, `${ms} ms: more than the child can have used`);
      // This process's own time grows as it works (within 5 s: it does not stand still).
      const own = processCpuMs("self")!;
      const t = performance.now();
      while (processCpuMs("self")! - own < 100) {
        assert.ok(performance.now() - t < 5_000, "100 ms of work did not show in /proc/self/stat");
      }
    } finally {
      child.kill("SIGKILL");
      await child.status;
    }
    assert.equal(processCpuMs(child.pid), null, "a process that is gone has no figures");
  },
});
