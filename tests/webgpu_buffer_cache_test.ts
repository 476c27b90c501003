/**
 * Freed means freed, on the software WebGPU adapter: a session created the way the
 * webgpu engine creates it (workers/engines/web.ts, onnxruntime-web's buffer cache set to
 * "lazyRelease") holds fewer GPU bytes after its runs than one with onnxruntime-web's
 * default cache, and every tracked byte is gone after `release()`.
 */
import assert from "node:assert/strict";
import { requireWebGpu } from "./_requires.ts";
import { compareBufferCache } from "../scripts/gpu_report/buffer_cache.ts";
import { WEBGPU_BUFFER_CACHE } from "../workers/engines/web.ts";

const webgpu = await requireWebGpu();

Deno.test({
  name: "webgpu buffer cache - runs leave no cached buffers behind, release leaves 0 bytes",
  ignore: !webgpu,
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const dir = await Deno.makeTempDir({ prefix: "headroom-cache-" });
  try {
    const { headroom, ortDefault } = await compareBufferCache(dir);
    assert.deepEqual(headroom.cache, WEBGPU_BUFFER_CACHE);
    // The weights are the same buffers either way.
    assert.equal(headroom.createdBytes, ortDefault.createdBytes);
    assert.ok(headroom.createdBytes >= 2 ** 20, `weights tracked: ${headroom.createdBytes}`);
    // ORT's default cache keeps the runs' freed buffers; Headroom's setting gives them back.
    assert.ok(
      headroom.afterRunsBytes < ortDefault.afterRunsBytes,
      `after the runs: ${headroom.afterRunsBytes} B with lazyRelease vs ${ortDefault.afterRunsBytes} B with ORT's default`,
    );
    assert.ok(headroom.peakBytes <= ortDefault.peakBytes, JSON.stringify({ headroom, ortDefault }));
    assert.equal(headroom.afterReleaseBytes, 0, "release() gives every tracked byte back");
    assert.equal(ortDefault.afterReleaseBytes, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
