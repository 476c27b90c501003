// Swap cost: a request for an offloaded pipeline (the policy brings it back to the GPU,
// then it runs) against the same request on a pipeline already on the GPU, both through
// the infer route of a real service with a real worker, on the software WebGPU adapter
// and a small generated model. One group, so `deno bench` prints the ratio. Iterations
// are bounded (a rehydrate is a new WebGPU session: hundreds of ms on a software adapter).
import { parseSyntheticSize, planSyntheticModel } from "../core/models/synthetic.ts";
import { startHeadroom } from "../server/serve_headroom.ts";

const SIZE = "256KiB";
const service = await startHeadroom({
  config: {
    gpu: "software",
    vramBudget: { kind: "bytes", bytes: 256 * 2 ** 20 },
    headroomBytes: 25 * 2 ** 20,
  },
  models: [{ id: "swap", source: `synthetic:${SIZE}` }],
  tempPrefix: "headroom-swap-bench-",
});
globalThis.addEventListener("unload", () => {
  service.close(); // its temp dir goes with it
});

const { width } = planSyntheticModel(parseSyntheticSize(SIZE));
const body = JSON.stringify({
  inputs: {
    input: {
      type: "float32",
      dims: [1, width],
      data: Array.from({ length: width }, (_, i) => Math.sin(i)),
    },
  },
});
const gpuReady = service.services.monitor.sourceKind === "webgpu";
if (!gpuReady) console.warn("swap_bench: no WebGPU adapter here; the swap benches are skipped");

/** One infer request through the app; fails loudly if it was not served on the GPU. */
async function infer(): Promise<void> {
  const response = await service.app.request("/api/v1/pipelines/swap/infer", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
  });
  const answer = await response.json();
  if (response.status !== 200 || answer.device !== "gpu") {
    throw new Error(
      `infer answered ${response.status} on ${answer.device}: ${JSON.stringify(answer)}`,
    );
  }
}

async function offload(): Promise<void> {
  const response = await service.app.request("/api/v1/models/swap/offload", { method: "POST" });
  const answer = await response.json();
  if (response.status !== 200 || answer.state !== "cpu") {
    throw new Error(`offload answered ${response.status}: ${JSON.stringify(answer)}`);
  }
}

// Load once, compile the shaders, run once: the benches measure the steady state.
if (gpuReady) {
  await infer();
  await offload();
  await infer();
}

Deno.bench({
  name: "swap - request on a pipeline already on the GPU",
  group: "swap",
  baseline: true,
  ignore: !gpuReady,
  n: 100,
  warmup: 5,
  fn: async () => {
    await infer();
  },
});

Deno.bench({
  name: "swap - request on an offloaded pipeline (rehydrate to the GPU, then run)",
  group: "swap",
  ignore: !gpuReady,
  n: 12,
  warmup: 2,
  fn: async (b) => {
    await offload(); // not timed: each iteration starts from the CPU
    b.start();
    await infer();
    b.end();
  },
});
