/**
 * `deno task figures` writes docs/reliability.md's table from test artifacts: every
 * "last run" figure comes from a file a test wrote, and the command refuses to write a
 * table with an artifact missing.
 */
import assert from "node:assert/strict";
import {
  type Artifacts,
  RELIABILITY_ROWS,
  renderReliability,
} from "../scripts/_lib/reliability_table.ts";

const SCRIPT = new URL("../scripts/figures.ts", import.meta.url).pathname;

/** One artifact per name the rows read, with figures a test could have written. */
function sampleArtifacts(): Artifacts {
  const at = "2026-11-29T10:00:00.000Z";
  return {
    fuzz: {
      at,
      machine: "2 cores, 24 GiB",
      loadAverage: 1.25,
      requestsSent: 10_008,
      errors5xx: 0,
      crashes: 0,
      hangs: 0,
    },
    faults_worker_crash: { at, faultsInjected: 7, errors503: 6, unexpectedErrors: 0 },
    faults_gpu_lost: { at, requestsSent: 288, errors5xx: 0, recoveryMs: 20 },
    faults_cuda_malloc: { at, faultsInjected: 5, crashes: 0 },
    faults_nvml_flaky: { at, faultsInjected: 7, unhandledRejections: 0 },
    kv_crash: {
      at,
      machine: "2 cores, 24 GiB",
      loadAverage: 3.5,
      killsSent: 6,
      acknowledged: 1343,
      found: 1343,
      lost: 0,
    },
    overload: {
      at,
      statuses: { "200": 185, "429": 15 },
      errors5xx: 0,
      oomEvents: 0,
      finalTrackedBytes: 484_000,
      budgetBytes: 588_000,
    },
    concurrency: {
      ranAt: "2026-11-29T10:05:00.000Z",
      clients: 10,
      opsPerClient: 65,
      operations: 650,
      seconds: 23.4,
      errors: 0,
      evictions: 36,
      maxTrackedBytes: 338_000,
      budgetBytes: 450_000,
      violations: 0,
    },
    scheduler_property_model: { at, sequences: 200, violations: 0, evictions: 1234 },
    scheduler_property_manager: { at, sequences: 200, violations: 0, evictions: 1187 },
    sigterm: { at, exitMs: 18 },
    sections_switch: { at, vramMb: 200, ramMb: 20, requestsMeanwhile: 3 },
    releases_late_free: { at, evictions: 1, headroomPasses: 29 },
    device_errors_unknown: { at, moves: 0, samples: 16, headroomPasses: 1 },
  };
}

Deno.test("figures - every row's last-run cell is rendered from its artifacts", () => {
  const lines = renderReliability(sampleArtifacts());
  assert.match(lines[0], /deno task figures/);
  assert.match(lines[0], /taken 2026-11-29 10:00 to 2026-11-29 10:05 UTC on 2 cores, 24 GiB/);
  assert.match(lines[0], /1-minute load average 1\.3–3\.5 while they ran/);
  const rows = lines.filter((l) => l.startsWith("| ") && !/^\| (promise|---) /.test(l));
  assert.equal(rows.length, RELIABILITY_ROWS.length);
  const table = lines.join("\n");
  assert.match(table, /10,008 requests, 0 5xx, 0 crashes, 0 hangs/);
  assert.match(table, /1,343 writes acknowledged, 1,343 found, 0 lost/);
  assert.match(table, /185 × 200, 15 × 429, 0 5xx, 0 OOM; tracked 484 KB of a 588 KB budget/);
  assert.match(table, /10 × 65: 650 ops in 23 s, 0 errors, 36 evictions/);
  assert.match(table, /18 ms from SIGTERM/);
  assert.match(
    table,
    /1 eviction\(s\) over 29 headroom passes; 0 moves over 16 samples under UNKNOWN/,
  );
  assert.doesNotMatch(table, /undefined|NaN/);
});

Deno.test("figures - a changed artifact changes the table", () => {
  const artifacts = sampleArtifacts();
  artifacts.kv_crash.lost = 2;
  assert.match(renderReliability(artifacts).join("\n"), /1,343 found, 2 lost/);
});

Deno.test("figures - a missing artifact is an error naming it and the command to run", () => {
  const artifacts = sampleArtifacts();
  delete artifacts.overload;
  assert.throws(() => renderReliability(artifacts), /"overload".*deno task test/);
});

Deno.test("figures - `deno task figures` writes the table between the markers of docs/reliability.md", async () => {
  const dir = await Deno.makeTempDir({ prefix: "headroom-figures-" });
  try {
    await Deno.mkdir(`${dir}/artifacts`);
    for (const [name, figures] of Object.entries(sampleArtifacts())) {
      await Deno.writeTextFile(`${dir}/artifacts/${name}.json`, JSON.stringify(figures));
    }
    const doc = `${dir}/reliability.md`;
    await Deno.writeTextFile(
      doc,
      "# Title\n\n## Reliability\n\n<!-- reliability:begin -->\nold\n<!-- reliability:end -->\n\n## Next\n",
    );
    const run = (args: string[]) =>
      new Deno.Command(Deno.execPath(), {
        args: ["run", "--allow-read", "--allow-write", "--allow-run", SCRIPT, ...args],
        stdout: "piped",
        stderr: "piped",
      }).output();
    const ok = await run(["--out", doc, "--artifacts", `${dir}/artifacts`]);
    assert.equal(ok.code, 0, new TextDecoder().decode(ok.stderr));
    const written = await Deno.readTextFile(doc);
    assert.doesNotMatch(written, /\nold\n/);
    assert.match(written, /^# Title\n\n## Reliability\n\n<!-- reliability:begin -->\n/);
    assert.match(written, /6 kills, 1,343 writes acknowledged/);
    assert.match(written, /<!-- reliability:end -->\n\n## Next\n$/);

    await Deno.remove(`${dir}/artifacts/fuzz.json`);
    const before = await Deno.readTextFile(doc);
    const missing = await run(["--out", doc, "--artifacts", `${dir}/artifacts`]);
    assert.equal(missing.code, 1);
    assert.match(new TextDecoder().decode(missing.stderr), /No test artifact for "fuzz"/);
    assert.equal(await Deno.readTextFile(doc), before, "the file is left as it was");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
