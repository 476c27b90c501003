// One source per setting: the README's configuration table, `--help` and the parser all say
// what SETTINGS (core/config.ts) declares, and `deno task check` fails on a stale table.
import assert from "node:assert/strict";
import {
  flagUsage,
  parseConfig,
  settingEntries,
  type SettingName,
  SETTINGS,
} from "../core/config.ts";
import { readSection } from "../scripts/_lib/generated_section.ts";
import { renderSettingsTable, SETTINGS_SECTION, tableCells } from "../scripts/docs.ts";
import { tempDir } from "./_temp.ts";

const ROOT = new URL("../", import.meta.url);
const README = new URL("README.md", ROOT);
const DOCS_SCRIPT = new URL("scripts/docs.ts", ROOT).pathname;

const run = async (args: string[]) => {
  const output = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT.pathname,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: output.code, stdout: decode(output.stdout), stderr: decode(output.stderr) };
};

Deno.test("settings - the README's configuration table has one row per setting, as SETTINGS declares it", async () => {
  const rows = tableCells(readSection(await Deno.readTextFile(README), SETTINGS_SECTION, "README"));
  const variables = rows.slice(1).map((row) => row[0].replaceAll("`", ""));
  const declared = settingEntries().map(([, setting]) => setting.env);
  assert.deepEqual(
    declared.filter((env) => !variables.includes(env)),
    [],
    "settings missing from the README: run `deno task docs`",
  );
  assert.deepEqual(variables, declared, "one row per setting, in declaration order");
  assert.deepEqual(rows, tableCells(renderSettingsTable()), "stale rows: run `deno task docs`");
});

Deno.test("settings - `--help` lists every setting with its variable, default and help", async () => {
  const help = await run(["run", "--allow-all", new URL("main.ts", ROOT).pathname, "--help"]);
  assert.equal(help.code, 0, help.stderr);
  const lines = help.stdout.split("\n");
  for (const [, setting] of settingEntries()) {
    const at = lines.findIndex((line) => line.trim().startsWith(`${flagUsage(setting)} `));
    assert.ok(at >= 0, `--help has no line for ${flagUsage(setting)}`);
    assert.ok(lines[at].includes(setting.env), `${setting.flag}: its variable ${setting.env}`);
    assert.ok(lines[at].includes(`(default: ${setting.shownDefault})`), `${setting.flag}: default`);
    const described: string[] = [];
    for (let i = at + 1; i < lines.length && !lines[i].trim().startsWith("--"); i++) {
      described.push(lines[i].trim());
    }
    assert.equal(described.join(" "), setting.help.replaceAll("`", ""), `${setting.flag}: help`);
  }
  const flags = [...help.stdout.matchAll(/^ {2}--([a-z-]+)/gm)].map((match) => match[1]);
  assert.deepEqual(
    flags,
    [...settingEntries().map(([, setting]) => setting.flag), "help"],
    "--help lists exactly the declared flags",
  );
});

/** A valid value for each setting, so every flag and variable is exercised. */
const SAMPLES: Record<SettingName, string> = {
  host: "localhost",
  port: "9100",
  token: "t".repeat(16),
  insecureNoToken: "1",
  tokenForReads: "1",
  tokenForInfer: "1",
  corsOrigins: "https://a.example, http://b.example:8080",
  allowedHosts: "Box.internal",
  maxStreams: "7",
  maxConnections: "300",
  headerTimeoutMs: "5s",
  idleTimeoutMs: "90s",
  queueLimit: "9",
  dataDir: "/tmp/headroom-data",
  kv: "/tmp/headroom.kv",
  gpu: "cpu",
  vramBudget: "8GiB",
  headroomBytes: "512MiB",
  sampleMs: "250",
  historyMs: "10m",
  modelsFile: "models.json",
  nvmlLibrary: "/opt/libnvidia-ml.so.1",
  cudartLibrary: "/opt/libcudart.so.12",
  onInsufficientVram: "reject",
  mode: "exclusive",
  keepAliveMs: "5m",
  idleAction: "unload",
  requestTimeoutMs: "30s",
  maxWaitMs: "500ms",
  pluginMemoryBytes: "512MiB",
  cpuEngine: "wasm",
  cpuThreads: "3",
  ortNodeDir: "/opt/onnxruntime-node",
  nodeName: "node-7",
};

Deno.test("settings - every declared flag and variable reaches its own field", () => {
  // The token-only switches need a token to ask for; the variable gives it unless tested.
  const base = { HEADROOM_TOKEN: SAMPLES.token };
  for (const [name, setting] of settingEntries()) {
    const expected = SETTINGS[name].schema.parse(SAMPLES[name]);
    const fromFlag = parseConfig(
      setting.arg ? [`--${setting.flag}`, SAMPLES[name]] : [`--${setting.flag}`],
      new Map(Object.entries(base)),
    );
    assert.ok(!fromFlag.help);
    assert.deepEqual(fromFlag.config[name], expected, `--${setting.flag} sets ${name}`);
    assert.equal(fromFlag.config.givenAs?.[name], `--${setting.flag}`);
    const fromEnv = parseConfig(
      [],
      new Map(Object.entries({ ...base, [setting.env]: SAMPLES[name] })),
    );
    assert.ok(!fromEnv.help);
    assert.deepEqual(fromEnv.config[name], expected, `${setting.env} sets ${name}`);
    assert.equal(fromEnv.config.givenAs?.[name], setting.env);
  }
});

Deno.test("docs - `deno task docs --check` fails on a stale table, naming the fix; `deno task docs` rewrites it", async () => {
  await using dir = await tempDir("headroom-docs-");
  const readme = `${dir.path}/README.md`;
  const current = await Deno.readTextFile(README);
  // A README from before a setting was added: its row is missing.
  const stale = current.split("\n").filter((line) => !line.startsWith("| `HEADROOM_QUEUE_LIMIT`"))
    .join("\n");
  await Deno.writeTextFile(readme, stale);
  const check = ["run", `--allow-read=${dir.path},${ROOT.pathname}`, DOCS_SCRIPT, "--check"];
  const failed = await run([...check, "--readme", readme]);
  assert.equal(failed.code, 1);
  assert.match(failed.stderr, /Stale: the configuration table .* Run `deno task docs`/);
  assert.equal(await Deno.readTextFile(readme), stale, "--check writes nothing");

  const write = await run([
    "run",
    "--allow-read",
    `--allow-write=${readme}`,
    "--allow-run",
    DOCS_SCRIPT,
    "--readme",
    readme,
  ]);
  assert.equal(write.code, 0, write.stderr);
  assert.equal(
    await Deno.readTextFile(readme),
    current,
    "the rewritten README is the committed one",
  );
  assert.equal((await run([...check, "--readme", readme])).code, 0);

  const tasks = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT))).tasks;
  assert.match(tasks.check, /scripts\/docs\.ts --check/, "`deno task check` runs the check");
});
