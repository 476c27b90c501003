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
