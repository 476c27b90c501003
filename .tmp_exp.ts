import { installGpuTracker } from "./workers/gpu_tracker.ts";
import { ensureSyntheticModel } from "./core/models/synthetic.ts";
const tracker = installGpuTracker()!;
const ort = await import("onnxruntime-web/webgpu");
ort.env.wasm.numThreads = 1;
const info = await ensureSyntheticModel("/tmp/hr-exp", "1MiB", { width: 256 });
const graph = await Deno.readFile(info.path);
const data = await Deno.readFile(info.dataPath!);
for (const mode of (Deno.args.length ? Deno.args : ["bucket", "lazyRelease"])) {
  tracker.resetPeak();
  const t0 = performance.now();
  const ep = mode === "default" ? "webgpu" : { name: "webgpu", storageBufferCacheMode: mode, ...(Deno.env.get("U") ? { uniformBufferCacheMode: mode, defaultBufferCacheMode: Deno.env.get("U") } : {}) } as const;
  const session = await ort.InferenceSession.create(graph, { executionProviders: [ep as any], externalData: [{ path: info.dataPath!.split("/").pop()!, data }] });
  const created = tracker.bytes;
  const name = session.inputNames[0];
  const times: number[] = [];
  for (const n of [64, 128, 64, 200]) {
    const x = new ort.Tensor("float32", new Float32Array(n * 256), [n, 256]);
    const t = performance.now();
    const out = await session.run({ [name]: x });
    times.push(performance.now() - t);
    for (const v of Object.values(out)) (v as any).dispose?.();
  }
  const afterRuns = tracker.bytes;
  const peak = tracker.peakBytes;
  await session.release();
  await new Promise((r) => setTimeout(r, 50));
  console.log(JSON.stringify({ mode, created, afterRuns, peak, afterRelease: tracker.bytes, buffers: tracker.buffers, runMs: times.map((t) => Math.round(t)), totalMs: Math.round(performance.now() - t0) }));
}
