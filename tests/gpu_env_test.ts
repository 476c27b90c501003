// The software WebGPU adapter as a user meets it: a readable name (no PCI ids) in the API
// and the `modelName` label, and no Mesa "XDG_RUNTIME_DIR is invalid or not set" line on
// stderr from the process or its workers, so a failing line in a CI log stands out.
import assert from "node:assert/strict";
import { adapterName, findAdapter } from "../core/monitor/webgpu_source.ts";
import { requireWebGpu } from "./_requires.ts";

const webgpu = await requireWebGpu();

Deno.test("adapter name - Mesa's numeric vendor and device ids are dropped, the description kept", () => {
  const mesa = {
    vendor: "65541",
    architecture: "",
    device: "0",
    description: "llvmpipe (LLVM 15.0.6, 256 bits)",
  };
  assert.equal(adapterName(mesa), "llvmpipe (LLVM 15.0.6, 256 bits)");
  assert.equal(
    adapterName({ vendor: "nvidia", architecture: "hopper", device: "0x2335", description: "" }),
    "nvidia hopper",
  );
  assert.equal(
    adapterName({ vendor: "apple", architecture: "apple", device: "", description: "" }),
    "apple",
  );
  assert.equal(
    adapterName({ vendor: "4318", architecture: "", device: "8997", description: "" }),
    "WebGPU adapter",
  );
});

Deno.test({
  name: "adapter name - the adapter found here reads without leading ids",
  ignore: !webgpu,
  fn: async () => {
    const found = await findAdapter();
    assert.ok(found);
    assert.doesNotMatch(found.name, /^\d+ /, found.name);
  },
});

Deno.test({
  name: "gpu environment - no XDG_RUNTIME_DIR line from the process or a worker when it is unset",
  ignore: !webgpu,
  fn: async () => {
    const script = `
      import { findAdapter } from ${
      JSON.stringify(import.meta.resolve("../core/monitor/webgpu_source.ts"))
    };
      const found = await findAdapter();
      const worker = new Worker("data:text/javascript," + encodeURIComponent(
        "const a = await navigator.gpu.requestAdapter(); postMessage(a ? 'adapter' : 'none');"
      ), { type: "module" });
      const answer = await new Promise((resolve) => worker.onmessage = (e) => resolve(e.data));
      worker.terminate();
      console.log(found ? found.name : "none", answer);`;
    const env = { ...Deno.env.toObject() };
    delete env.XDG_RUNTIME_DIR;
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--quiet", script],
      env,
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(output.stderr);
    const stdout = new TextDecoder().decode(output.stdout);
    assert.equal(output.code, 0, stderr);
    assert.match(stdout, / adapter\n$/, "the worker found the adapter too");
    assert.doesNotMatch(stderr, /XDG_RUNTIME_DIR/, stderr);
  },
});
