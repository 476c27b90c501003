/**
 * The GPU/CPU parity check's memory rule: up to `parityAtLoadMaxBytes` it compares
 * against a temporary CPU session at once; above, it opens no session of its own and runs
 * at the first offload, where the CPU session is created anyway (so a big model is never
 * held twice for it). Real workers on the software WebGPU adapter and the native engine.
 */
import assert from "node:assert/strict";
import { writeSyntheticModel } from "../core/models/synthetic.ts";
import { WorkerClient } from "../workers/client.ts";
import { DEFAULT_ORT_NODE_DIR } from "../workers/engines/choose.ts";
import type { OkReply, RequestKind, WorkerReply } from "../core/pipelines/protocol.ts";
import { pipelineSpec } from "../workers/spec.ts";
import { requireWebGpu } from "./_requires.ts";

if (!Deno.env.get("DENO_WEBGPU_BACKEND")) {
  try {
    Deno.statSync("/usr/share/vulkan/icd.d/lvp_icd.x86_64.json");
    Deno.env.set("DENO_WEBGPU_BACKEND", "vulkan");
  } catch { /* keep wgpu's default */ }
}
// Skipped here without an adapter; a failure under CI.
const webgpu = await requireWebGpu();

function ok<K extends RequestKind>(reply: WorkerReply<K>, what: string): OkReply<K> {
  if (!reply.ok) throw new Error(`${what}: ${reply.error.code}: ${reply.error.message}`);
  return reply as OkReply<K>;
}

async function withWorker(
  parityAtLoadMaxBytes: number,
  fn: (client: WorkerClient) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "headroom-parity-" });
  let client: WorkerClient | null = null;
  try {
    const info = await writeSyntheticModel(`${dir}/m.onnx`, 256 * 1024, { width: 64 });
    client = await WorkerClient.start(
      await pipelineSpec({
        modelId: "m",
        modelPath: info.path,
        cpuEngine: "native",
        ortNodeDir: DEFAULT_ORT_NODE_DIR,
        parityAtLoadMaxBytes,
      }),
    );
    await fn(client);
  } finally {
    client?.terminate();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name: "parity rule - a model above the line defers the check to its first offload",
  ignore: !webgpu,
  fn: async () => {
    await withWorker(0, async (client) => {
      ok(await client.load("gpu"), "load gpu");
      const deferred = ok(await client.parity(1e-3), "parity");
      assert.equal(deferred.parity, undefined, "no CPU session was created for it");
      assert.match(deferred.parityDeferred ?? "", /runs at the first offload/);
      assert.equal(deferred.status.engine, "webgpu");
      const offload = ok(await client.offload(), "offload");
      assert.ok(offload.parity, "the offload ran the deferred check");
      assert.equal(offload.parity.agrees, true, `max error ${offload.parity.maxAbsError}`);
      assert.ok(offload.parity.elements > 0);
      assert.deepEqual([offload.status.device, offload.status.engine], ["cpu", "native"]);
      assert.equal(offload.status.gpuBytes, 0, "the GPU session went after the check");
      ok(await client.rehydrate(), "rehydrate");
      const again = ok(await client.offload(), "second offload");
      assert.equal(again.parity, undefined, "the check runs once");
    });
  },
});

Deno.test({
  name: "parity rule - a model under the line is checked at once, against a temporary session",
  ignore: !webgpu,
  fn: async () => {
    await withWorker(256 * 2 ** 20, async (client) => {
      ok(await client.load("gpu"), "load gpu");
      const checked = ok(await client.parity(1e-3), "parity");
      assert.equal(checked.parityDeferred, undefined);
      assert.equal(checked.parity?.agrees, true);
      assert.deepEqual([checked.status.device, checked.status.engine], ["gpu", "webgpu"]);
      const offload = ok(await client.offload(), "offload");
      assert.equal(offload.parity, undefined);
    });
  },
});
