/**
 * Plugins run with narrowed permissions: a plugin (tests/fixtures/sandbox_probe_plugin.ts)
 * tries the network, the environment, a subprocess, writing and reading outside its
 * grant, native code, system facts and a remote import from inside its plugin process
 * beside a real engine worker, on each CPU engine, and every attempt must be refused,
 * with nothing reaching the test's listener, its env var, or its files.
 */
import assert from "node:assert/strict";
import { writeSyntheticModel } from "../core/models/synthetic.ts";
import { WorkerClient } from "../workers/client.ts";
import { DEFAULT_ORT_NODE_DIR } from "../workers/engines/choose.ts";
import { pipelineSpec } from "../workers/spec.ts";
import { libcPath } from "../ffi/libc.ts";
import type { ProbeReport, ProbeTargets } from "./fixtures/sandbox_probe_plugin.ts";
import { exists } from "./_requires.ts";

const PLUGIN = new URL("./fixtures/sandbox_probe_plugin.ts", import.meta.url).href;
const ATTEMPTS = [
  "fetch",
  "connect",
  "listen",
  "envGet",
  "envAll",
  "run",
  "write",
  "read",
  "dlopen",
  "sys",
  "import",
];

/** Whether the native engine (onnxruntime-node) is installed here. */
function hasNativeEngine(): boolean {
  try {
    return Deno.statSync(DEFAULT_ORT_NODE_DIR).isDirectory;
  } catch {
    return false;
  }
}

async function probe(cpuEngine: "wasm" | "native"): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "headroom-sandbox-" });
  const outside = await Deno.makeTempDir({ prefix: "headroom-sandbox-outside-" });
  const envName = "HEADROOM_SANDBOX_SECRET";
  Deno.env.set(envName, "do-not-leak");
  let connections = 0;
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepting = (async () => {
    for await (const conn of listener) {
      connections++;
      conn.close();
    }
  })();
  let client: WorkerClient | null = null;
  try {
    const model = await writeSyntheticModel(`${dir}/model.onnx`, 64 * 1024, { width: 4 });
    await Deno.writeTextFile(`${outside}/secret.txt`, "secret");
    const libc = libcPath() ?? "/lib/x86_64-linux-gnu/libc.so.6";
    client = await WorkerClient.start(
      await pipelineSpec({
        modelId: "synthetic-test",
        modelPath: model.path,
        pluginUrl: PLUGIN,
        cpuEngine,
        ortNodeDir: cpuEngine === "native" ? DEFAULT_ORT_NODE_DIR : null,
      }),
    );
    const loaded = await client.load("cpu");
    assert.ok(loaded.ok, JSON.stringify(loaded));
    const targets: ProbeTargets = {
      port: listener.addr.port,
      envName,
      // Beside the model: the worker may read that folder, never write to it.
      writePath: `${dir}/escaped.txt`,
      touchPath: `${outside}/touched`,
      secretPath: `${outside}/secret.txt`,
      libcPath: libc,
    };
    const reply = await client.run({ kind: "plugin", payload: targets });
    assert.ok(reply.ok, JSON.stringify(reply));
    assert.equal(reply.output?.kind, "plugin");
    const report = (reply.output as { payload: ProbeReport }).payload;
    assert.deepEqual(Object.keys(report).sort(), [...ATTEMPTS].sort());
    const allowed = Object.entries(report)
      .filter(([, a]) => !a.refused)
      .map(([name, a]) => `${name}: ${a.error} ${a.message}`);
    assert.deepEqual(allowed, [], `the ${cpuEngine} worker allowed:\n${allowed.join("\n")}`);
    for (const [name, a] of Object.entries(report)) {
      // The refusal names the permission, as Deno words it ("Requires net access to …"),
      // or, for a remote import, the flag that forbids every remote module.
      assert.match(
        a.message,
        /Requires \w+ access|--no-remote is specified/,
        `${name}: ${a.error} ${a.message}`,
      );
    }
    // The refusals are real: nothing reached the listener, the disk or the env.
    assert.equal(connections, 0, "no connection reached the test's listener");
    assert.equal(exists(targets.writePath), false, "no file written");
    assert.equal(exists(targets.touchPath), false, "no subprocess ran");
  } finally {
    client?.terminate();
    await client?.exited;
    listener.close();
    await accepting.catch(() => {});
    Deno.env.delete(envName);
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(outside, { recursive: true });
  }
}

Deno.test("worker sandbox - a plugin on the wasm engine is refused net, env, run, write, read, FFI, sys, import", async () => {
  await probe("wasm");
});

Deno.test({
  name:
    "worker sandbox - a plugin on the native engine is refused the same (FFI only for its addon)",
  ignore: !hasNativeEngine(),
}, async () => {
  await probe("native");
});
