import assert from "node:assert/strict";
import { ChunkLoop, MAX_CONSECUTIVE_OOMS } from "../core/pipelines/chunk_loop.ts";
import { PipelineError } from "../core/pipelines/errors.ts";

const oom = () => new PipelineError("oom", "out of GPU memory");

/** A loop whose process fails with OOM for the listed call numbers (1-based). */
function loopFailing(failures: Set<number>, exhausted: "cpu" | "stop") {
  const log: string[] = [];
  let calls = 0;
  const loop = new ChunkLoop<string, string>({
    process: (chunk) => {
      calls++;
      log.push(`process ${chunk}`);
      if (failures.has(calls)) return Promise.reject(oom());
      return Promise.resolve(`done ${chunk}`);
    },
    release: () => {
      log.push("release");
      return Promise.resolve();
    },
    exhausted: () => {
      log.push("exhausted");
      return Promise.resolve(exhausted);
    },
  });
  return { loop, log };
}

Deno.test("ChunkLoop - retries an out-of-memory chunk after releasing, and a success resets the count", async () => {
  const { loop, log } = loopFailing(new Set([1, 2, 3, 5, 6, 7]), "stop");
  assert.equal(await loop.handle("a"), "done a");
  assert.deepEqual(log.filter((l) => l === "release").length, 3);
  assert.equal(loop.consecutiveOoms, 0, "reset by the success");
  assert.equal(await loop.handle("b"), "done b", "three more in a row are still recovered");
  assert.ok(!log.includes("exhausted"));
});

Deno.test(`ChunkLoop - past ${MAX_CONSECUTIVE_OOMS} in a row it moves to the CPU and goes on`, async () => {
  const { loop, log } = loopFailing(new Set([1, 2, 3, 4]), "cpu");
  assert.equal(await loop.handle("a"), "done a");
  assert.deepEqual(log, [
    "process a",
    "release",
    "process a",
    "release",
    "process a",
    "release",
    "process a",
    "exhausted",
    "process a",
  ]);
});

Deno.test("ChunkLoop - past the retries with 'stop' it fails with a clear error; other errors pass at once", async () => {
  const { loop } = loopFailing(new Set([1, 2, 3, 4]), "stop");
  await assert.rejects(() => loop.handle("a"), (error: Error) => {
    assert.ok(error instanceof PipelineError && error.code === "oom");
    assert.match(error.message, /3 tries of the same chunk in a row; the stream stops/);
    return true;
  });
  const failing = new ChunkLoop<string, string>({
    process: () => Promise.reject(new PipelineError("bad_input", "nope")),
    release: () => assert.fail("no release for a non-OOM error"),
    exhausted: () => assert.fail("not exhausted"),
  });
  await assert.rejects(() => failing.handle("x"), /nope/);
});
