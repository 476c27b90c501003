import assert from "node:assert/strict";
import { ConfigError, parseConfig } from "../core/config.ts";

const env = (values: Record<string, string>) => new Map(Object.entries(values));

function problemsOf(args: string[], values: Record<string, string>): string[] {
  try {
    parseConfig(args, env(values));
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected ConfigError, got ${error}`);
    return error.problems;
  }
  assert.fail("expected the configuration to be rejected");
}

Deno.test("parseConfig - defaults bind loopback port 8000 with auto GPU and 1.5 GiB headroom", () => {
  const result = parseConfig([], env({}));
  assert.equal(result.help, false);
  if (result.help) return;
  assert.equal(result.config.host, "127.0.0.1");
  assert.equal(result.config.port, 8000);
  assert.equal(result.config.gpu, "auto");
  assert.equal(result.config.headroomBytes, 1.5 * 2 ** 30);
  assert.equal(result.config.sampleMs, 1000);
  assert.equal(result.config.historyMs, 3_600_000);
  assert.equal(result.config.token, null);
});

Deno.test("parseConfig - units, percentages and flags over env", () => {
  const result = parseConfig(
    ["--port", "9001", "--vram-budget", "90%"],
    env({
      HEADROOM_PORT: "1234",
      HEADROOM_HEADROOM: "512MiB",
      HEADROOM_HISTORY: "10m",
      HEADROOM_GPU: "nvidia",
    }),
  );
  assert.ok(!result.help);
  assert.equal(result.config.port, 9001);
  assert.deepEqual(result.config.vramBudget, { kind: "percent", percent: 90 });
  assert.equal(result.config.headroomBytes, 512 * 2 ** 20);
  assert.equal(result.config.historyMs, 600_000);
  assert.equal(result.config.gpu, "nvidia");
  const bytes = parseConfig([], env({ HEADROOM_VRAM_BUDGET: "8GiB" }));
  assert.ok(!bytes.help);
  assert.deepEqual(bytes.config.vramBudget, { kind: "bytes", bytes: 8 * 2 ** 30 });
});

const BAD_VALUES: Array<[string, string, RegExp]> = [
  ["HEADROOM_PORT", "eighty", /HEADROOM_PORT="eighty": expected a port number/],
  ["HEADROOM_PORT", "70000", /HEADROOM_PORT="70000"/],
  ["HEADROOM_GPU", "tpu", /HEADROOM_GPU="tpu": expected one of auto, nvidia, webgpu/],
  ["HEADROOM_VRAM_BUDGET", "lots", /HEADROOM_VRAM_BUDGET="lots": expected a size/],
  ["HEADROOM_VRAM_BUDGET", "150%", /at most 100/],
  ["HEADROOM_HEADROOM", "1.5 parsecs", /HEADROOM_HEADROOM="1.5 parsecs": expected a size/],
  ["HEADROOM_SAMPLE_MS", "5", /HEADROOM_SAMPLE_MS="5": expected milliseconds from 50/],
  ["HEADROOM_HISTORY", "forever", /HEADROOM_HISTORY="forever": expected a duration/],
  ["HEADROOM_TOKEN", "short", /HEADROOM_TOKEN="short": must be at least 16 characters/],
  ["HEADROOM_ON_INSUFFICIENT_VRAM", "panic", /expected cpu or reject/],
];

for (const [name, value, expected] of BAD_VALUES) {
  Deno.test(`parseConfig - ${name}=${value} is rejected with a message naming it`, () => {
    const problems = problemsOf([], { [name]: value });
    assert.equal(problems.length, 1, problems.join("\n"));
    assert.match(problems[0], expected);
  });
}

Deno.test("parseConfig - every bad value is reported at once", () => {
  const problems = problemsOf(["--sample-ms", "x"], { HEADROOM_PORT: "x", HEADROOM_GPU: "x" });
  assert.equal(problems.length, 3);
  assert.match(problems.join("\n"), /--sample-ms="x"/);
});

Deno.test("parseConfig - a non-loopback host needs a token or --insecure-no-token", () => {
  assert.match(problemsOf([], { HEADROOM_HOST: "0.0.0.0" })[0], /needs an API token/);
  const withToken = parseConfig(
    [],
    env({ HEADROOM_HOST: "0.0.0.0", HEADROOM_TOKEN: "x".repeat(16) }),
  );
  assert.ok(!withToken.help);
  const insecure = parseConfig(["--insecure-no-token"], env({ HEADROOM_HOST: "0.0.0.0" }));
  assert.ok(!insecure.help && insecure.config.insecureNoToken);
});

Deno.test("parseConfig - webgpu and software modes need a budget in bytes", () => {
  assert.match(problemsOf([], { HEADROOM_GPU: "software" })[0], /needs a budget in bytes/);
  assert.match(
    problemsOf([], { HEADROOM_GPU: "webgpu", HEADROOM_VRAM_BUDGET: "50%" })[0],
    /needs a budget in bytes/,
  );
});

Deno.test("parseConfig - an unknown flag is rejected", () => {
  assert.match(problemsOf(["--prot", "1"], {})[0], /--prot/);
});

Deno.test("main.ts - a bad value exits non-zero with its message", async () => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--unstable-kv", "--allow-all", new URL("../main.ts", import.meta.url).pathname],
    env: { HEADROOM_PORT: "nope", HEADROOM_GPU: "cpu" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(output.code, 2);
  assert.match(new TextDecoder().decode(output.stderr), /HEADROOM_PORT="nope": expected a port/);
});

Deno.test("parseConfig - cross-checks name the flag or the variable the user actually used", () => {
  const flag = problemsOf(["--host", "0.0.0.0"], {});
  assert.match(flag[0], /^--host="0\.0\.0\.0": binding beyond loopback needs an API token/);
  assert.doesNotMatch(flag[0], /HEADROOM_HOST=/);
  const variable = problemsOf([], { HEADROOM_HOST: "0.0.0.0" });
  assert.match(variable[0], /^HEADROOM_HOST="0\.0\.0\.0"/);
  assert.match(
    problemsOf(["--gpu", "software"], {})[0],
    /^--gpu=software: needs a budget in bytes/,
  );
  assert.match(problemsOf([], { HEADROOM_GPU: "webgpu" })[0], /^HEADROOM_GPU=webgpu/);
  assert.match(problemsOf(["--token-for-reads"], {})[0], /^--token-for-reads: needs a token/);
  assert.match(
    problemsOf([], { HEADROOM_TOKEN_FOR_INFER: "1" })[0],
    /^HEADROOM_TOKEN_FOR_INFER: needs a token/,
  );
});

Deno.test("parseConfig - allowed hosts and the node name", () => {
  const result = parseConfig(
    ["--allowed-hosts", "GPU-Box.internal, headroom.lan", "--node-name", "node-7"],
    env({}),
  );
  assert.ok(!result.help);
  if (result.help) return;
  assert.deepEqual(result.config.allowedHosts, ["gpu-box.internal", "headroom.lan"]);
  assert.equal(result.config.nodeName, "node-7");
  assert.match(
    problemsOf([], { HEADROOM_ALLOWED_HOSTS: "https://x.example/" })[0],
    /HEADROOM_ALLOWED_HOSTS=.*no scheme, no port/,
  );
});
