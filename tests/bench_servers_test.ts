// The serving bench's reference servers (bench/least_server.ts, bench/least_batching_server.ts):
// its ratios compare Headroom with them, so they must answer what the engine answers. Sixteen
// concurrent distinct inputs to the least batching server run in batches (fewer runs than
// requests) and each caller gets its own row: the least server's answer to the same input.
import assert from "node:assert/strict";
import { ensureSyntheticModel } from "../core/models/synthetic.ts";
import { startServerProcess } from "../scripts/_lib/server_process.ts";

const ROOT = new URL("..", import.meta.url).pathname;

/** A v2 JSON body of one 1×width input whose values depend on `seed`. */
function body(seed: number, width: number): string {
  const data = Array.from({ length: width }, (_, i) => Math.fround(Math.sin(i + seed) / 2));
  return JSON.stringify({ inputs: [{ name: "input", shape: [1, width], datatype: "FP32", data }] });
}

async function answer(url: string, text: string): Promise<number[]> {
  const response = await fetch(url, { method: "POST", body: text });
  assert.equal(response.status, 200);
  return (await response.json()).outputs[0].data;
}

Deno.test("bench servers - the least batching server batches concurrent callers and answers each its own row", async () => {
  const dir = await Deno.makeTempDir({ prefix: "headroom-bench-servers-" });
  try {
    const model = await ensureSyntheticModel(dir, "256KiB", { width: 64 });
    const args = (file: string) => ["run", "--allow-all", file, model.path, "1"];
    await using least = await startServerProcess({
      args: args("bench/least_server.ts"),
      cwd: ROOT,
    });
    await using batching = await startServerProcess({
      args: args("bench/least_batching_server.ts"),
      cwd: ROOT,
    });
    const bodies = Array.from({ length: 16 }, (_, i) => body(i, model.width));
    const expected: number[][] = [];
    for (const text of bodies) expected.push(await answer(least.url, text));
    const got = await Promise.all(bodies.map((text) => answer(batching.url, text)));
    for (let i = 0; i < bodies.length; i++) {
      assert.equal(got[i].length, expected[i].length, `request ${i}: its row's width`);
      const worst = got[i].reduce((m, v, k) => Math.max(m, Math.abs(v - expected[i][k])), 0);
      assert.ok(worst <= 1e-5, `request ${i}: differs from the least server by ${worst}`);
    }
    // Distinct inputs give distinct rows: no caller got a neighbour's.
    assert.notDeepEqual(got[0], got[1]);
    const runs = await (await fetch(`${batching.url}/runs`)).json();
    assert.ok(runs.runs < bodies.length, `${runs.runs} runs for ${bodies.length} requests`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
