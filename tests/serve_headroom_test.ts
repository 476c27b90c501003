// serveHeadroom/startHeadroom (server/serve_headroom.ts), the one in-process set-up the
// tools, tests and benchmarks share: it answers on a loopback port with the catalog it
// was given, a bad flag is refused naming it, and close() leaves nothing behind but
// the data dir a caller chose.
import assert from "node:assert/strict";
import { ConfigError } from "../core/config.ts";
import { serveHeadroom, startHeadroom } from "../server/serve_headroom.ts";

const exists = (path: string) => Deno.stat(path).then(() => true, () => false);

Deno.test("serveHeadroom - serves its models on a loopback port; close removes its temp dir", async () => {
  const headroom = await serveHeadroom({
    args: ["--gpu", "cpu"],
    models: [{ id: "tiny", source: "synthetic:64KiB" }],
    tempPrefix: "headroom-serve-test-",
  });
  const tempDir = headroom.tempDir!;
  try {
    assert.match(headroom.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.notEqual(headroom.server.addr.port, 0);
    assert.ok(headroom.config.dataDir.startsWith(tempDir), headroom.config.dataDir);
    const response = await fetch(`${headroom.url}/api/v1/models`);
    assert.equal(response.status, 200);
    const { models } = await response.json();
    assert.deepEqual(models.map((m: { id: string }) => m.id), ["tiny"]);
    assert.equal(headroom.services.monitor.sourceKind, "none");
    assert.ok(await exists(`${tempDir}/models.json`));
  } finally {
    await headroom.close();
  }
  assert.equal(await exists(tempDir), false, "the temp dir is gone");
  await headroom.close(); // a second close is a no-op
  await assert.rejects(fetch(`${headroom.url}/api/v1/models`), "nothing listens any more");
});

Deno.test("serveHeadroom - an open live stream does not hold close() up", async () => {
  await using headroom = await serveHeadroom({ args: ["--gpu", "cpu"] });
  const stream = await fetch(`${headroom.url}/api/v1/hardware/vram/stream`);
  assert.equal(stream.status, 200);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const closed = await Promise.race([
    headroom.close().then(() => "closed"),
    new Promise((resolve) => timer = setTimeout(() => resolve("still open after 5 s"), 5000)),
  ]);
  clearTimeout(timer);
  await stream.body?.cancel().catch(() => {});
  assert.equal(closed, "closed", "close() waited for the stream");
});

Deno.test("startHeadroom - a data dir the caller names is used and kept; a bad flag names itself", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "headroom-serve-test-data-" });
  try {
    await using headroom = await startHeadroom({ args: ["--gpu", "cpu"], config: { dataDir } });
    assert.equal(headroom.tempDir, null, "no temp dir was needed");
    assert.equal(headroom.config.dataDir, dataDir);
    const response = await headroom.request("/api/v1/hardware/vram");
    assert.equal(response.status, 200);
    await response.body?.cancel();
    await headroom.close();
    assert.ok(await exists(`${dataDir}/headroom.kv`), "the service kept its profiles there");
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
  await assert.rejects(
    startHeadroom({ args: ["--vram-budget", "lots"] }),
    (error: unknown) => error instanceof ConfigError && /--vram-budget="lots"/.test(error.message),
  );
});
