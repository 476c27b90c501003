// The service as a newcomer runs it: `main.ts` in its own process, reading the driver
// test double through HEADROOM_NVML_LIBRARY, with the double's state in a shared file
// so this test can change what the server's NVML sees.
import assert from "node:assert/strict";
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
