// The service as a newcomer runs it: `main.ts` in its own process, reading the driver
// test double through HEADROOM_NVML_LIBRARY, with the double's state in a shared file
// so this test can change what the server's NVML sees.
import assert from "node:assert/strict";
import { writeArtifact } from "./fixtures/artifact.ts";
import { FAKE_GPU_PATH, FakeGpu, GiB } from "./fake_gpu.ts";
import { readSse } from "./_service.ts";

Deno.test("main.ts - serves the double's devices and the SSE stream follows its changes", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "headroom-e2e-" });
  const statePath = `${dir}/fakegpu.state`;
  const gpu = new FakeGpu({ isolate: true, statePath });
  gpu.setTotal(0, 16 * GiB);
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--unstable-kv",
      "--allow-all",
      new URL("../main.ts", import.meta.url).pathname,
      "--port",
      "0",
    ],
    env: {
      HEADROOM_NVML_LIBRARY: FAKE_GPU_PATH,
      FAKE_GPU_STATE: statePath,
      HEADROOM_DATA_DIR: dir,
      HEADROOM_SAMPLE_MS: "100",
    },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const controller = new AbortController();
  try {
    const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let seen = "";
    let url = "";
    while (!url) {
      const { value, done } = await lines.read();
      if (done) assert.fail(`the server exited before listening: ${seen}`);
      seen += value;
      url = /http:\/\/127\.0\.0\.1:\d+/.exec(seen)?.[0] ?? "";
    }
    assert.match(seen, /VRAM source nvml/);
    const vram = await (await fetch(`${url}/api/v1/hardware/vram`)).json();
    assert.equal(vram.source, "nvml");
    assert.equal(vram.devices[0].totalBytes, 16 * GiB);

    const stream = await fetch(`${url}/api/v1/hardware/vram/stream`, { signal: controller.signal });
    const events = readSse(stream);
    await events.next();
    gpu.setOtherUsed(0, 5 * GiB);
    const started = performance.now();
    for await (const event of events) {
      if (event.event === "snapshot" && JSON.parse(event.data).devices[0].usedBytes === 5 * GiB) {
        break;
      }
      assert.ok(performance.now() - started < 5000, "the change never arrived");
    }
    assert.ok(performance.now() - started < 1000, "the change took over a second");
    controller.abort();
    lines.cancel().catch(() => {});
  } finally {
    child.kill("SIGTERM");
    const status = await child.status;
    await child.stderr.cancel().catch(() => {});
    gpu.close();
    Deno.removeSync(dir, { recursive: true });
    // SIGTERM is a clean shutdown: in-flight work finishes, workers end, KV closes, exit 0.
    assert.equal(status.code, 0, `exit: ${JSON.stringify(status)}`);
  }
});

/** Starts main.ts (CPU only, a temp data dir); answers the child, its URL and what it printed. */
async function startMain(args: string[] = [], env: Record<string, string> = {}) {
  const dir = Deno.makeTempDirSync({ prefix: "headroom-e2e-stop-" });
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", new URL("../main.ts", import.meta.url).pathname, ...args],
    env: { HEADROOM_GPU: "cpu", HEADROOM_DATA_DIR: dir, ...env },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  let url = "";
  while (!url) {
    const { value, done } = await lines.read();
    if (done) break;
    seen += value;
    url = /http:\/\/127\.0\.0\.1:\d+/.exec(seen)?.[0] ?? "";
  }
  const rest = (async () => {
    while (true) {
      const { value, done } = await lines.read();
      if (done) return seen;
      seen += value;
    }
  })();
  return { child, url, dir, stdout: rest, stderr };
}

Deno.test("main.ts - SIGTERM ends open SSE and WebSocket streams at once and exits quickly; no deno serve warning", async () => {
  const { child, url, dir, stdout, stderr } = await startMain(["--port", "0"]);
  try {
    if (!url) assert.fail(`it did not listen: ${await stderr}`);
    const stream = await fetch(`${url}/api/v1/hardware/vram/stream`);
    const events = readSse(stream);
    assert.equal((await events.next()).value?.event, "snapshot");
    const ws = new WebSocket(`${url.replace("http", "ws")}/api/v1/pipelines/silero-vad/stream`);
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = reject;
    });
    const closed = new Promise<CloseEvent>((resolve) => ws.onclose = resolve);
    const started = performance.now();
    child.kill("SIGTERM");
    const shutdown = await events.next();
    assert.equal(shutdown.value?.event, "shutdown", "the page is told the server stopped");
    assert.equal((await events.next()).done, true, "and the stream ends");
    const close = await closed;
    assert.equal(close.code, 1001);
    const status = await child.status;
    const ms = performance.now() - started;
    console.log(`SIGTERM to exit with an SSE stream and a WebSocket open: ${ms.toFixed(0)} ms`);
    assert.equal(status.code, 0);
    // Before, the open stream held the drain until the 10 s deadline.
    assert.ok(ms < 5000, `${ms.toFixed(0)} ms to exit`);
    await writeArtifact("sigterm", { exitMs: Math.round(ms), sse: 1, webSockets: 1 });
    const out = await stdout;
    const err = await stderr;
    assert.doesNotMatch(out + err, /deno serve/);
    assert.doesNotMatch(out + err, /did not finish/);
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
    await child.status;
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("main.ts - a port in use is one line naming the port and --port, exit 1", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  const { child, url, dir, stdout, stderr } = await startMain(["--port", String(port)]);
  try {
    const status = await child.status;
    assert.equal(url, "", "it did not claim to listen");
    assert.equal(status.code, 1);
    const lines = (await stderr).trim().split("\n");
    assert.equal(lines.length, 1, lines.join("\n"));
    assert.match(lines[0], new RegExp(`port ${port} on 127\\.0\\.0\\.1 is already in use`));
    assert.match(lines[0], /--port/);
    assert.doesNotMatch(await stdout, /AddrInUse|at /);
  } finally {
    listener.close();
    Deno.removeSync(dir, { recursive: true });
  }
});
