// `deno task stress` as a person runs it: a subprocess that starts Headroom in-process
// (generated models, a 1 MiB budget, the software WebGPU adapter when there is one),
// runs concurrent clients against it and reports; plus its flag handling and the pure
// helpers behind the mix and the percentiles.
import assert from "node:assert/strict";
import { parseMix, pickOp, seededRandom, summarize } from "../scripts/_lib/stats.ts";
import { requireWebGpu } from "./_requires.ts";

// Skipped here without an adapter; a failure under CI.
const webgpu = await requireWebGpu();

const ROOT = new URL("../", import.meta.url).pathname;
const SCRIPT = new URL("../scripts/stress.ts", import.meta.url).pathname;

/** The top-level fields the --help text documents. */
const FIELDS = [
  "tool",
  "target",
  "clients",
  "opsPerClient",
  "mix",
  "seed",
  "durationMs",
  "totalOps",
  "opsPerSecond",
  "ops",
  "overall",
  "errors",
  "status5xx",
  "invariants",
  "events",
  "ok",
];

async function runStress(
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", SCRIPT, ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: output.code, stdout: text(output.stdout), stderr: text(output.stderr) };
}

// The 4 × 30 run uses `--gpu cpu`: on the software WebGPU adapter, GPU loads that overlap
// (a switch while infers auto-load) take about a minute each on this 2-core machine, far
// past any sane request timeout; the small run below covers the GPU path and the budget.
Deno.test("stress - 4 clients × 30 ops in-process: no 5xx, no invariant violated, documented JSON", async () => {
  const run = await runStress([
    "--clients=4",
    "--ops=30",
    "--seed=7",
    "--gpu=cpu",
    "--mix=infer=60,load=10,offload=10,check=15,switch=5",
    "--json",
  ]);
  assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
  const result = JSON.parse(run.stdout);
  for (const field of FIELDS) assert.ok(field in result, `field ${field}`);
  assert.equal(result.tool, "stress");
  assert.equal(result.target.mode, "in-process");
  assert.equal(result.target.gpu, "cpu");
  assert.equal(result.target.models.length, 4);
  assert.deepEqual(result.mix, { infer: 60, load: 10, offload: 10, check: 15, switch: 5 });
  assert.equal(result.totalOps, 120);
  assert.equal(result.overall.count, 120);
  assert.equal(result.status5xx, 0, JSON.stringify(result.errors));
  assert.equal(result.overall.noAnswer, 0);
  assert.deepEqual(result.invariants.violations, []);
  assert.ok(result.invariants.polls > 0);
  assert.equal(result.ok, true);
  assert.ok(result.opsPerSecond > 0);
  const sum = Object.values(result.ops as Record<string, { count: number }>)
    .reduce((a, s) => a + s.count, 0);
  assert.equal(sum, 120);
  const infer = result.ops.infer;
  assert.ok(infer.count > 0);
  for (const p of ["p50", "p95", "p99", "max", "mean"]) {
    assert.equal(typeof infer.latencyMs[p], "number", p);
  }
  assert.ok(infer.latencyMs.p50 <= infer.latencyMs.p95);
  assert.ok(infer.latencyMs.p95 <= infer.latencyMs.p99);
  for (const error of result.errors) {
    assert.ok(error.status >= 400 && error.status < 500, JSON.stringify(error));
    assert.equal(typeof error.code, "string");
  }
});

Deno.test({
  name: "stress - on the software WebGPU adapter the budget holds while two models contend",
  ignore: !webgpu,
}, async () => {
  const dir = Deno.makeTempDirSync({ prefix: "headroom-stress-test-" });
  const models = `${dir}/models.json`;
  Deno.writeTextFileSync(
    models,
    JSON.stringify({
      models: [
        { id: "small", source: "synthetic:64KiB" },
        { id: "big", source: "synthetic:256KiB" },
      ],
    }),
  );
  try {
    const run = await runStress([
      "--clients=2",
      "--ops=6",
      "--seed=3",
      "--mix=infer=3,check=1",
      `--models=${models}`,
      "--budget=512KiB",
      "--timeout=120",
      "--json",
    ]);
    assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
    const result = JSON.parse(run.stdout);
    assert.deepEqual(result.target.models, ["small", "big"]);
    assert.equal(result.totalOps, 12);
    assert.equal(result.status5xx, 0);
    assert.deepEqual(result.invariants.violations, []);
    assert.equal(result.target.source, "webgpu", "the stress run found no WebGPU adapter");
    assert.equal(result.target.budgetBytes, 512 * 1024);
    assert.ok(result.invariants.budgetChecks > 0, "the budget was checked on every poll");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("stress - --help exits 0; bad flags exit 2 naming the flag", async () => {
  const help = await runStress(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Usage: deno task stress/);
  assert.match(help.stdout, /--mix SPEC/);
  const cases: Array<[string[], RegExp]> = [
    [["--mix", "infer=60,fly=10"], /--mix: unknown operation "fly"/],
    [["--mix", "infer=lots"], /--mix: infer=lots: the weight must be a number/],
    [["--mix", "infer=0"], /--mix: every weight is 0/],
    [["--clients", "0"], /--clients: "0" is out of range/],
    [["--ops", "2.5"], /--ops: "2.5" is not a whole number/],
    [["--budget", "lots"], /--budget: "lots": expected a size/],
    [["--url", "ftp://x"], /--url: "ftp:\/\/x": expected an http/],
    [["--nope"], /--nope/],
  ];
  for (const [args, message] of cases) {
    const run = await runStress(args);
    assert.equal(run.code, 2, `${args.join(" ")}: ${run.stderr}`);
    assert.match(run.stderr, message);
  }
});

Deno.test("stress helpers - mix parsing, weighted picks, percentiles", () => {
  assert.deepEqual(parseMix("infer=3,check=1"), {
    infer: 3,
    load: 0,
    offload: 0,
    check: 1,
    switch: 0,
  });
  assert.throws(() => parseMix("infer=1,infer=2"), /given twice/);
  assert.throws(() => parseMix("infer"), /not kind=weight/);
  const random = seededRandom(42);
  const counts: Record<string, number> = {};
  for (let i = 0; i < 4000; i++) {
    const op = pickOp(parseMix("infer=3,check=1"), random);
    counts[op] = (counts[op] ?? 0) + 1;
  }
  assert.deepEqual(Object.keys(counts).sort(), ["check", "infer"]);
  assert.ok(counts.infer > 2700 && counts.infer < 3300, JSON.stringify(counts));
  const a = seededRandom(5);
  const b = seededRandom(5);
  assert.deepEqual([a(), a(), a()], [b(), b(), b()]);
  const samples = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.deepEqual(summarize(samples), { p50: 50, p95: 95, p99: 99, max: 100, mean: 50.5 });
  assert.ok(Number.isNaN(summarize([]).p50));
});
