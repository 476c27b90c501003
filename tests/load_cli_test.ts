// `deno task load` (scripts/load.ts) as a user runs it: a subprocess, in-process on a
// models file of two tiny generated models, and against a running server with --url.
import assert from "node:assert/strict";
import { serveHeadroom } from "../server/serve_headroom.ts";
import { tempDirSync } from "./_temp.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const SCRIPT = new URL("../scripts/load.ts", import.meta.url).pathname;

/** A models file of two tiny generated models; returns its path. */
function modelsFile(): string {
  const dir = tempDirSync("headroom-load-cli-");
  const path = `${dir}/models.json`;
  Deno.writeTextFileSync(
    path,
    JSON.stringify({
      models: [
        { id: "tiny-a", source: "synthetic:64KiB" },
        { id: "tiny-b", source: "synthetic:128KiB" },
      ],
    }),
  );
  return path;
}

/** Runs the load script with `args` (and `env`), answering its exit code and output. */
async function runLoad(args: string[], env: Record<string, string> = {}) {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", SCRIPT, ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: output.code,
    stdout: new TextDecoder().decode(output.stdout),
    stderr: new TextDecoder().decode(output.stderr),
  };
}

interface Row {
  model: string;
  placement: string | null;
  trackedBytes: number | null;
  ramBytes: number | null;
  ms: number | null;
  vramBasis: string | null;
  error: string | null;
}

function assertMeasured(rows: Row[], ids: string[]) {
  assert.deepEqual(rows.map((r) => r.model), ids);
  for (const row of rows) {
    assert.equal(row.error, null, row.model);
    assert.equal(row.placement, "cpu", row.model);
    assert.equal(row.trackedBytes, 0, `${row.model} holds no GPU bytes on the CPU`);
    assert.equal(row.vramBasis, "tracked");
    assert.ok(typeof row.ms === "number" && row.ms > 0, `${row.model} took ${row.ms} ms`);
    assert.ok(
      typeof row.ramBytes === "number" && row.ramBytes > 0,
      `${row.model}: RAM ${row.ramBytes} is what its session holds, never ≤ 0`,
    );
  }
}

Deno.test("deno task load - in-process, --json: every model of the models file is measured", async () => {
  const dataDir = tempDirSync("headroom-load-data-");
  const result = await runLoad(
    ["--json", "--gpu", "cpu", "--data-dir", dataDir],
    { HEADROOM_MODELS: modelsFile() },
  );
  assert.equal(result.code, 0, result.stderr);
  const rows: Row[] = JSON.parse(result.stdout).measurements;
  assertMeasured(rows, ["tiny-a", "tiny-b"]);

  const table = await runLoad(
    ["--models", "tiny-b", "--gpu=cpu", "--data-dir", dataDir],
    { HEADROOM_MODELS: modelsFile() },
  );
  assert.equal(table.code, 0, table.stderr);
  const lines = table.stdout.trim().split("\n");
  assert.match(
    lines[0],
    /^model\s+placement\s+engine\s+VRAM MB\s+basis\s+tracked MB\s+RAM MB\s+RSS MB\s+load ms/,
  );
  assert.equal(lines.length, 3, table.stdout);
  assert.match(
    lines[2],
    /^tiny-b\s+cpu\s+native\s+0\.00\s+tracked\s+0\.00\s+(?!0\.00\s)\d+\.\d\d\s+\d+\.\d\d\s/,
    "RAM is the weights the native engine holds (never 0 or negative), RSS apart",
  );

  const unknown = await runLoad(
    ["--models", "nope", "--gpu", "cpu", "--data-dir", dataDir],
    { HEADROOM_MODELS: modelsFile() },
  );
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /Unknown model "nope"/);
  const badFlag = await runLoad(["--vram-budget", "lots", "--data-dir", dataDir]);
  assert.equal(badFlag.code, 2, "a bad server flag is reported by the server's parser");
  assert.match(badFlag.stderr, /--vram-budget="lots"/);
});

Deno.test("deno task load --url - follows a running server's test load, with its token", async () => {
  const token = "load-cli-test-token-0123456789";
  const headroom = await serveHeadroom({ config: { gpu: "cpu", token, modelsFile: modelsFile() } });
  try {
    const url = headroom.url;
    const result = await runLoad(["--url", url, "--token", token, "--json"]);
    assert.equal(result.code, 0, result.stderr);
    assertMeasured(JSON.parse(result.stdout).measurements, ["tiny-a", "tiny-b"]);
    // The figures landed in the server's profiles.
    const models = (await (await fetch(`${url}/api/v1/models`)).json()).models;
    for (const id of ["tiny-a", "tiny-b"]) {
      const model = models.find((m: { id: string }) => m.id === id);
      assert.equal(model.display, "unloaded", id);
      assert.ok(model.cpuProfile, `${id} has a CPU profile`);
    }

    const fromEnv = await runLoad(["--url", url, "--models", "tiny-a", "--json"], {
      HEADROOM_TOKEN: token,
    });
    assert.equal(fromEnv.code, 0, fromEnv.stderr);
    assertMeasured(JSON.parse(fromEnv.stdout).measurements, ["tiny-a"]);

    const noToken = await runLoad(["--url", url]);
    assert.equal(noToken.code, 1);
    assert.match(noToken.stderr, /answered 401/);
    const unreachable = await runLoad(["--url", "http://127.0.0.1:9"]);
    assert.equal(unreachable.code, 1);
    assert.match(unreachable.stderr, /cannot reach/);
  } finally {
    await headroom.close();
  }
});

Deno.test("deno task load --help - documents the flags and exits 0", async () => {
  const result = await runLoad(["--help"]);
  assert.equal(result.code, 0, result.stderr);
  for (const flag of ["--models", "--device", "--url", "--token", "--json", "--vram-budget"]) {
    assert.ok(result.stdout.includes(flag), `--help mentions ${flag}`);
  }
  const bad = await runLoad(["--device", "tpu"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--device="tpu": expected gpu or cpu/);
});
