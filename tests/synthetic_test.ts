import { generationLog } from "../workers/manager/lifecycle.ts";
import assert from "node:assert/strict";
import * as ort from "onnxruntime-web";
import protoRoot from "onnx-proto";
import type { onnx as OnnxNamespace } from "onnx-proto";
import {
  ensureSyntheticModel,
  formatSyntheticSize,
  parseSyntheticSize,
  planSyntheticModel,
  syntheticModelBytes,
  writeSyntheticModel,
} from "../core/models/synthetic.ts";

const onnx = (protoRoot as unknown as { onnx: typeof OnnxNamespace }).onnx;
const MiB = 2 ** 20;

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "headroom-synthetic-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function checkModelRuns(path: string, width: number): Promise<void> {
  const name = path.slice(path.lastIndexOf("/") + 1);
  const session = await ort.InferenceSession.create(await Deno.readFile(path), {
    externalData: [{ path: `${name}.data`, data: await Deno.readFile(`${path}.data`) }],
  });
  try {
    assert.deepEqual(session.inputNames, ["input"]);
    assert.deepEqual(session.outputNames, ["output"]);
    const data = Float32Array.from({ length: 2 * width }, (_, i) => Math.sin(i));
    const { output } = await session.run({ input: new ort.Tensor("float32", data, [2, width]) });
    assert.deepEqual(output.dims, [2, width]);
    const values = output.data as Float32Array;
    assert.ok(values.every(Number.isFinite), "every output is finite");
    assert.ok(values.some((v) => v !== 0), "outputs are not all zero");
  } finally {
    await session.release();
  }
}

for (const requested of [1 * MiB, 64 * MiB]) {
  Deno.test(`synthetic model - ${formatSyntheticSize(requested)} loads in onnxruntime-web and runs`, async () => {
    await withTempDir(async (dir) => {
      const info = await writeSyntheticModel(`${dir}/model.onnx`, requested);
      assert.equal(info.dataPath, `${dir}/model.onnx.data`, "weights in one external data file");
      const graph = (await Deno.stat(info.path)).size;
      assert.ok(graph < 64 * 1024, `the graph file holds no weights (${graph} B)`);
      const size = graph + (await Deno.stat(info.dataPath!)).size;
      assert.equal(size, info.fileBytes);
      assert.ok(
        Math.abs(size / requested - 1) < 0.02,
        `file ${size} B within 2 % of ${requested} B`,
      );
      assert.ok(Math.abs(info.weightBytes / requested - 1) < 0.01, "weights within 1 %");
      await checkModelRuns(info.path, info.width);
    });
  });
}

Deno.test("synthetic model - the streamed protobuf decodes with every initializer", () => {
  const bytes = syntheticModelBytes(256 * 1024, { width: 64 });
  const graph = onnx.ModelProto.decode(bytes).graph as OnnxNamespace.GraphProto;
  const plan = planSyntheticModel(256 * 1024, 64);
  assert.equal(graph.initializer.length, 2 * plan.layers);
  assert.equal(graph.node.length, 3 * plan.layers - 1);
  assert.equal(graph.initializer[0].rawData?.length, 64 * 64 * 4);
  assert.equal(graph.input[0].type?.tensorType?.shape?.dim?.[0].dimParam, "N");
});

Deno.test("synthetic model - same seed gives the same bytes, another seed others", async () => {
  const a = syntheticModelBytes(MiB, 7);
  assert.deepEqual(a, syntheticModelBytes(MiB, 7));
  assert.notDeepEqual(a, syntheticModelBytes(MiB, 8));
  await withTempDir(async (dir) => {
    const progress: number[] = [];
    const info = await writeSyntheticModel(`${dir}/m.onnx`, MiB, {
      seed: 7,
      externalData: false,
      onProgress: (written, total) => {
        assert.equal(total, a.length);
        progress.push(written);
      },
    });
    assert.deepEqual(await Deno.readFile(info.path), a, "the file equals the in-memory model");
    assert.equal(progress.at(-1), a.length);
    assert.deepEqual((await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name), ["m.onnx"]);
  });
});

Deno.test("synthetic model - ensureSyntheticModel writes once and reuses the file", async () => {
  await withTempDir(async (dir) => {
    const first = await ensureSyntheticModel(`${dir}/models`, "256KiB");
    assert.equal(first.path, `${dir}/models/synthetic-256KiB.onnx`);
    const { mtime } = await Deno.stat(first.path);
    await new Promise((r) => setTimeout(r, 20));
    const second = await ensureSyntheticModel(`${dir}/models`, 256 * 1024);
    assert.deepEqual(second, first);
    assert.deepEqual((await Deno.stat(first.path)).mtime, mtime, "not rewritten");
  });
});

Deno.test("synthetic model - plans stay within 1 % from 1 MB to 8 GiB", () => {
  for (const bytes of [1e6, MiB, 10 * MiB, 100e6, 256 * MiB, 1e9, 2 ** 31, 5e9, 8 * 2 ** 30]) {
    const plan = planSyntheticModel(bytes);
    assert.ok(Math.abs(plan.weightBytes / bytes - 1) < 0.01, `${bytes}: ${JSON.stringify(plan)}`);
    assert.ok(plan.width * plan.width * 4 <= 66 * MiB, "one layer stays about 64 MiB at most");
  }
});

Deno.test("parseSyntheticSize - accepts B, KB, KiB, MB, MiB, GB, GiB", () => {
  assert.equal(parseSyntheticSize("256MiB"), 256 * MiB);
  assert.equal(parseSyntheticSize("1.5 GB"), 1.5e9);
  assert.equal(parseSyntheticSize("2gib"), 2 * 2 ** 30);
  assert.equal(parseSyntheticSize("64KB"), 64_000);
  assert.equal(parseSyntheticSize("4KiB"), 4096);
  assert.equal(parseSyntheticSize("100MB"), 100e6);
  assert.equal(parseSyntheticSize("4096"), 4096);
  assert.equal(parseSyntheticSize("4096B"), 4096);
  assert.equal(formatSyntheticSize(256 * MiB), "256MiB");
  assert.equal(formatSyntheticSize(1000), "1000B");
});

Deno.test("parseSyntheticSize - rejects bad sizes with a message naming the value", () => {
  for (const bad of ["", "abc", "12 parsecs", "-5MiB", "1e9", "MiB", "3 TB", "0B"]) {
    assert.throws(
      () => parseSyntheticSize(bad),
      (error: Error) => error instanceof RangeError && error.message.includes(`"${bad}"`),
      bad,
    );
  }
});

Deno.test("synthetic model - a write that takes long logs its progress every 2 s with a rate, a short one stays silent", () => {
  let clock = 0;
  const lines: string[] = [];
  const edges: boolean[] = [];
  const log = generationLog("m4g", (line, edge) => {
    lines.push(line);
    edges.push(edge);
  }, () => clock);
  const GiB = 2 ** 30;
  clock = 1500;
  log(0.5 * GiB, 4 * GiB); // within the first 2 s: silent
  clock = 2500;
  log(1 * GiB, 4 * GiB);
  clock = 3000;
  log(1.2 * GiB, 4 * GiB); // 0.5 s after the last line: silent
  clock = 5000;
  log(2 * GiB, 4 * GiB);
  clock = 10_000;
  log(4 * GiB, 4 * GiB);
  assert.deepEqual(lines, [
    'Generating model "m4g": 1.00 of 4.00 GiB (25 %), 410 MiB/s',
    'Generating model "m4g": 2.00 of 4.00 GiB (50 %), 410 MiB/s',
    'Generating model "m4g": 4.00 of 4.00 GiB (100 %), 410 MiB/s',
  ]);
  assert.deepEqual(edges, [true, false, true], "the first and last lines go to the event log too");
  const quiet: string[] = [];
  const fast = generationLog("tiny", (line) => quiet.push(line), () => 100);
  fast(2 ** 20, 2 ** 20);
  assert.deepEqual(quiet, []);
});
