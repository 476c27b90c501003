// The terminal tools' scaffold (scripts/_lib/tool.ts): the --help text is built from the
// same declarations the parser reads, so every flag a tool takes is documented; values
// come back typed; `deno task load` passes the flags it does not know to the server; and
// several bad flags are reported in one run, one line each naming the flag, exit 2.
import assert from "node:assert/strict";
import { defineTool, flag } from "../scripts/_lib/tool.ts";

const ROOT = new URL("../", import.meta.url).pathname;

function demo(passThrough = false) {
  return defineTool({
    name: "demo",
    usage: "deno task demo [--count N] [--url URL] [--json]",
    about: "A tool for this test.",
    flags: {
      count: {
        arg: "N",
        help: "how many (default 3)",
        schema: flag.number(3, { min: 1, integer: true }),
      },
      url: { arg: "URL", help: "a server\nwith a second line", schema: flag.url() },
      device: { arg: "D", help: "gpu or cpu", schema: flag.oneOf(["gpu", "cpu"] as const, null) },
      json: { help: "print JSON" },
    },
    notes: "Exit status: 0.",
    passThrough,
  });
}

Deno.test("tool scaffold - --help lists every declared flag, aligned, with the notes", () => {
  const help = demo().help;
  assert.equal(
    help,
    [
      "Usage: deno task demo [--count N] [--url URL] [--json]",
      "",
      "A tool for this test.",
      "",
      "  --count N   how many (default 3)",
      "  --url URL   a server",
      "              with a second line",
      "  --device D  gpu or cpu",
      "  --json      print JSON",
      "  --help      this text",
      "",
      "Exit status: 0.",
    ].join("\n"),
  );
});

Deno.test("tool scaffold - values come back typed, defaults filled; pass-through keeps the rest in order", () => {
  const strict = demo().parse(["--count=7", "--url", "http://127.0.0.1:8000/", "--json"]);
  assert.deepEqual(strict.values, {
    count: 7,
    url: "http://127.0.0.1:8000",
    device: null,
    json: true,
  });
  assert.deepEqual(strict.rest, []);
  assert.deepEqual(demo().parse([]).values, { count: 3, url: null, device: null, json: false });

  const loose = demo(true).parse(["--gpu", "cpu", "--device", "gpu", "--port=0", "--json"]);
  assert.deepEqual(loose.values, { count: 3, url: null, device: "gpu", json: true });
  assert.deepEqual(loose.rest, ["--gpu", "cpu", "--port=0"]);
  const checked = demo().parse(["--count", "2"], (values) => values.count * 10);
  assert.equal(checked.values, 20);
});

Deno.test("tool scaffold - several bad flags: one line each naming the flag, then the --help hint, exit 2", async () => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      `${ROOT}scripts/stress.ts`,
      "--clients",
      "0",
      "--ops=2.5",
      "--gpu",
      "tpu",
    ],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(output.stderr).trim().split("\n");
  assert.equal(output.code, 2);
  assert.deepEqual(stderr, [
    'stress: --clients: "0" is out of range: expected from 1 to 1000',
    'stress: --ops: "2.5" is not a whole number',
    'stress: --gpu: "tpu": expected auto, nvidia, webgpu, software or cpu',
    "Run `deno task stress --help` for the flags.",
  ]);
  assert.equal(new TextDecoder().decode(output.stdout), "");
});

/** Each deno.json task that runs one program: its name, the `deno run` flags and the file. */
function toolTasks(): Array<{ task: string; flags: string[]; script: string }> {
  const { tasks } = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`)) as {
    tasks: Record<string, string>;
  };
  const found: Array<{ task: string; flags: string[]; script: string }> = [];
  const seen = new Set<string>();
  for (const [task, command] of Object.entries(tasks)) {
    const run = /deno run ((?:--\S+ )*)(\S+\.ts)$/.exec(command.split("&&").at(-1)!.trim());
    if (!run || seen.has(run[2])) continue; // `dev` runs main.ts like `start`
    seen.add(run[2]);
    found.push({
      task,
      flags: run[1].trim().split(" ").filter((f) => f !== "--watch"),
      script: run[2],
    });
  }
  return found;
}

async function runTask(
  { flags, script }: { flags: string[]; script: string },
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...flags, script, ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: output.code, stdout: text(output.stdout), stderr: text(output.stderr) };
}

Deno.test("tools - every deno.json task that is a tool answers --help (exit 0) and a bogus flag (exit 2)", async () => {
  const tools = toolTasks();
  for (
    const name of [
      "start",
      "build",
      "manifest",
      "build:fake-gpu",
      "figures",
      "gen-model",
      "pressure",
      "stress",
      "load",
      "bench",
    ]
  ) {
    assert.ok(tools.some((t) => t.task === name), `${name} is found among the tasks`);
  }
  for (const tool of tools) {
    const help = await runTask(tool, ["--help"]);
    assert.equal(help.code, 0, `${tool.task} --help: ${help.stderr}`);
    assert.match(help.stdout, /^Usage: deno task /, `${tool.task} --help`);
    assert.match(help.stdout, /--help/, `${tool.task} --help lists the flags`);
    const bogus = await runTask(tool, ["--bogus-flag"]);
    assert.equal(bogus.code, 2, `${tool.task} --bogus-flag: ${bogus.stderr}`);
    assert.match(bogus.stderr, /--bogus-flag/, `${tool.task} names the flag`);
    assert.doesNotMatch(bogus.stderr, /TypeError|at .*\.ts:\d+/, `${tool.task}: no stack`);
  }
});

Deno.test("tools - a negative value reads as a value: every bad flag reported, '> 0' for a positive amount", async () => {
  const pressure = toolTasks().find((t) => t.task === "pressure")!;
  const run = await runTask(pressure, ["--gib", "-1", "--hold", "x", "--bogus", "--step-gib=0"]);
  assert.equal(run.code, 2);
  assert.deepEqual(run.stderr.trim().split("\n"), [
    "pressure: --bogus: not a flag of this tool",
    'pressure: --gib: "-1" is out of range: expected > 0',
    'pressure: --hold: "x" is not a number',
    'pressure: --step-gib: "0" is out of range: expected at least 0.0009765625',
    "Run `deno task pressure --help` for the flags.",
  ]);
});

Deno.test("gen-model - a size above 20 GiB is refused before anything is written", async () => {
  const dir = await Deno.makeTempDir({ prefix: "headroom-gen-model-" });
  try {
    const genModel = toolTasks().find((t) => t.task === "gen-model")!;
    const run = await runTask(genModel, ["--size", "25GiB", "--out", `${dir}/big.onnx`]);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /--size: "25GiB" is above the 20GiB limit/);
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

for (const [signal, code] of [["SIGTERM", 143], ["SIGINT", 130]] as const) {
  Deno.test(`gen-model - ${signal} mid-write removes the temporary files`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "headroom-gen-model-" });
    try {
      const genModel = toolTasks().find((t) => t.task === "gen-model")!;
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          ...genModel.flags,
          genModel.script,
          "--size",
          "2GiB",
          "--out",
          `${dir}/m.onnx`,
        ],
        cwd: ROOT,
        stdout: "null",
        stderr: "piped",
      }).spawn();
      // Wait for the weights to be under way: a temporary data file with bytes in it.
      const deadline = Date.now() + 30_000;
      let started = false;
      while (!started && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        started = [...Deno.readDirSync(dir)].some((e) =>
          e.name.endsWith(".tmp") && Deno.statSync(`${dir}/${e.name}`).size > 2 ** 20
        );
      }
      assert.ok(started, "the write began");
      child.kill(signal);
      const status = await child.status;
      const stderr = new TextDecoder().decode(
        await new Response(child.stderr).arrayBuffer(),
      );
      assert.equal(status.code, code, stderr);
      assert.match(stderr, new RegExp(`${signal}: stopped; the partial files were removed`));
      assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), []);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}
