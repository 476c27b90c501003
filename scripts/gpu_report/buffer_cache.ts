/**
 * What onnxruntime-web's WebGPU buffer cache costs: one generated model, created the way
 * the engine creates it (workers/engines/web.ts), run at a few batch sizes with
 * Headroom's cache settings and with onnxruntime-web's defaults, the GPU buffers counted
 * by workers/gpu_tracker.ts: after create, after the runs, the peak, and after
 * `release()`. Runs in the calling realm (the report's main thread, or a test).
 * @module
 */
import {
  createWebSession,
  importWebgpuBuild,
  ORT_DEFAULT_BUFFER_CACHE,
  WEBGPU_BUFFER_CACHE,
  type WebGpuBufferCache,
} from "../../workers/engines/web.ts";
import { ensureSyntheticModel } from "../../core/models/synthetic.ts";

/** Tracked GPU bytes of one session's life under one cache setting. */
export interface CacheFigures {
  cache: WebGpuBufferCache;
  createdBytes: number;
  afterRunsBytes: number;
  peakBytes: number;
  afterReleaseBytes: number;
  runMs: number[];
}

/** Both settings, Headroom's first. */
export interface BufferCacheComparison {
  model: { bytes: number; width: number };
  batches: number[];
  headroom: CacheFigures;
  ortDefault: CacheFigures;
}

/** The batch sizes run: different sizes, so a cache keyed by size keeps each one's buffers. */
export const CACHE_BATCHES = [64, 128, 64, 200];

/**
 * Measures both cache settings on a `bytes` model of `width` generated in `dir` (reused
 * when there). Throws when this realm has no WebGPU adapter.
 */
export async function compareBufferCache(
  dir: string,
  bytes = 2 ** 20,
  width = 256,
): Promise<BufferCacheComparison> {
  const build = await importWebgpuBuild();
  const tracker = build.tracker;
  if (!tracker) throw new Error("No WebGPU classes in this realm: the tracker cannot count");
  const info = await ensureSyntheticModel(dir, bytes, { width });
  const files = {
    modelPath: info.path,
    externalData: info.dataPath
      ? [{ location: info.dataPath.slice(info.dataPath.lastIndexOf("/") + 1), path: info.dataPath }]
      : [],
  };
  const measure = async (cache: WebGpuBufferCache): Promise<CacheFigures> => {
    tracker.resetPeak();
    const session = await createWebSession(build.ort, files, "webgpu", cache);
    const createdBytes = tracker.bytes;
    const runMs: number[] = [];
    let afterRunsBytes = createdBytes;
    try {
      for (const n of CACHE_BATCHES) {
        const x = new build.ort.Tensor("float32", new Float32Array(n * width), [n, width]);
        const started = performance.now();
        await session.run({ [session.inputNames[0]]: x });
        runMs.push(Math.round(performance.now() - started));
      }
      afterRunsBytes = tracker.bytes;
    } finally {
      await session.release();
    }
    return {
      cache,
      createdBytes,
      afterRunsBytes,
      peakBytes: tracker.peakBytes,
      afterReleaseBytes: tracker.bytes,
      runMs,
    };
  };
  const headroom = await measure(WEBGPU_BUFFER_CACHE);
  const ortDefault = await measure(ORT_DEFAULT_BUFFER_CACHE);
  return {
    model: { bytes: info.weightBytes, width },
    batches: CACHE_BATCHES,
    headroom,
    ortDefault,
  };
}
