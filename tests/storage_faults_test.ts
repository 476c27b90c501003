// Storage faults are visible and honest (issue 20 findings 15, 16 and 19): a KV write that
// fails (a full disk) leaves the load that happened a 200 with the reason said, health and
// /metrics degraded and counting; a corrupt KV file is one line and exit 2; a `null` value
// in a valid KV is skipped and counted; a second service on one data dir is refused.
import assert from "node:assert/strict";
import { serveHeadroom } from "../server/serve_headroom.ts";
import { STORAGE_HEADER } from "../server/http/storage_notice.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const MODELS = [
  { id: "tiny-a", source: "synthetic:64KiB" },
  { id: "tiny-b", source: "synthetic:64KiB" },
];

async function serve(dataDir?: string) {
  const headroom = await serveHeadroom({
    config: { gpu: "cpu", ...(dataDir ? { dataDir } : {}) },
    models: MODELS,
    tempPrefix: "headroom-storage-",
  });
  return { ...headroom, [Symbol.asyncDispose]: headroom.close };
}

/** Runs main.ts on `dataDir` until it exits (or for at most 60 s); answers its code and stderr. */
async function runMain(dataDir: string): Promise<{ code: number; stderr: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--unstable-kv",
      MAIN,
      "--gpu",
      "cpu",
      "--port",
      "0",
      "--data-dir",
      dataDir,
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  const [status, , stderr] = await Promise.all([
    child.status,
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
  ]);
  clearTimeout(timer);
  return { code: status.code, stderr };
}

Deno.test("storage - a full disk: the load answers 200 and says the event was not kept", async () => {
  await using s = await serve();
  const set = Deno.Kv.prototype.set;
  const atomic = Deno.Kv.prototype.atomic;
  const full = () => {
    throw new Error("No space left on device (os error 28)");
  };
  Deno.Kv.prototype.set = full as typeof set;
  Deno.Kv.prototype.atomic = function () {
    const op = atomic.call(this);
    op.commit = () => Promise.reject(new Error("No space left on device (os error 28)"));
    return op;
  };
  try {
    const load = await fetch(`${s.url}/api/v1/models/tiny-a/load`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"device":"cpu"}',
    });
    const body = await load.json();
    assert.equal(load.status, 200, `the load happened: ${JSON.stringify(body)}`);
    assert.equal(s.service.services.scheduler.model("tiny-a").state, "cpu");
    assert.match(load.headers.get(STORAGE_HEADER) ?? "", /degraded; .*No space left on device/);
    await new Promise((resolve) => setTimeout(resolve, 100)); // the events' writes settle
    const health = await (await fetch(`${s.url}/api/v1/health`)).json();
    assert.equal(health.status, "degraded");
    assert.equal(health.storage.state, "degraded");
    assert.ok(health.storage.droppedEvents > 0, JSON.stringify(health.storage));
    // The VRAM report (the dashboard's feed) says it too.
    const report = await (await fetch(`${s.url}/api/v1/hardware/vram`)).json();
    assert.equal(report.storage?.state, "degraded", JSON.stringify(report.storage));
    const metrics = await (await fetch(`${s.url}/metrics`)).text();
    const dropped = /^headroom_kv_dropped_events_total\{[^}]*\} (\d+)$/m.exec(metrics);
    assert.ok(dropped && Number(dropped[1]) > 0, "dropped events are counted on /metrics");
  } finally {
    Deno.Kv.prototype.set = set;
    Deno.Kv.prototype.atomic = atomic;
  }
  // The disk has room again: the next write clears the state (the counts stay).
  await fetch(`${s.url}/api/v1/models/tiny-b/load`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: '{"device":"cpu"}',
  }).then((r) => r.body?.cancel());
  assert.equal(s.service.services.store.health().state, "ok");
});

Deno.test("storage - a corrupt KV file stops the start with one line naming it and the fix, exit 2", async () => {
  const dir = await Deno.makeTempDir({ prefix: "headroom-corrupt-kv-" });
  try {
    await Deno.writeTextFile(`${dir}/headroom.kv`, "this is not a KV file ".repeat(400));
    const { code, stderr } = await runMain(dir);
    assert.equal(code, 2, stderr);
    const lines = stderr.trim().split("\n").filter((line) => !/^(Warning|Download)/.test(line));
    assert.equal(lines.length, 1, `one line, got:\n${stderr}`);
    assert.match(lines[0], new RegExp(`${dir}/headroom\\.kv cannot be read`));
    assert.match(lines[0], /move it aside .*--data-dir/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("storage - null values in a valid KV are skipped and counted, the service starts", async () => {
  const dir = await Deno.makeTempDir({ prefix: "headroom-null-kv-" });
  try {
    const kv = await Deno.openKv(`${dir}/headroom.kv`);
    await kv.set(["event", 1], null);
    await kv.set(["event", 2], {
      seq: 2,
      at: Date.now(),
      kind: "info",
      pipeline: null,
      message: "kept",
    });
    await kv.set(["profile", "tiny-a", "gpu", "default"], null);
    kv.close();
    await using s = await serve(dir);
    const health = await (await fetch(`${s.url}/api/v1/health`)).json();
    assert.equal(health.storage.skippedValues, 2, JSON.stringify(health.storage));
    const metrics = await (await fetch(`${s.url}/metrics`)).text();
    assert.match(metrics, /^headroom_kv_skipped_values_total\{[^}]*\} 2$/m);
    assert.ok(
      s.service.services.events.recent().some((e) => e.message === "kept"),
      "the good event is restored",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("storage - a second service on the same data dir is refused, naming the other's pid", async () => {
  const dir = await Deno.makeTempDir({ prefix: "headroom-two-" });
  try {
    {
      await using _first = await serve(dir);
      const { code, stderr } = await runMain(dir);
      assert.equal(code, 2, stderr);
      assert.match(stderr, new RegExp(`in use by another Headroom \\(pid ${Deno.pid}`));
      assert.match(stderr, /--data-dir/);
    }
    // Closed, the lock is given back: the next start on the dir works.
    await using again = await serve(dir);
    assert.equal((await fetch(`${again.url}/api/v1/health`)).status, 200);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
