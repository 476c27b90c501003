// The one API client (api_client/mod.ts) that the page and the terminal tools
// share, against a real Headroom: answers as data for the tools (status, body, the
// server's error code and message, no answer as status 0), thrown ApiErrors for the
// page's sendApi, and a failure that is not our JSON (a proxy's page) read by status.
import assert from "node:assert/strict";
import { ApiError, callApi, getVram, sendApi } from "../api_client/mod.ts";
import type { ModelRow } from "../core/types.ts";
import { serveHeadroom } from "../server/serve_headroom.ts";

const TOKEN = "api-client-test-token-0123456789";

/** A port nothing listens on: one just freed. */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

Deno.test("callApi - answers as data: body, the server's error code and message, the token sent", async () => {
  await using headroom = await serveHeadroom({
    args: ["--gpu", "cpu", "--token", TOKEN],
    models: [{ id: "tiny", source: "synthetic:64KiB" }],
  });
  const vram = await callApi<{ source: string }>(headroom.url, "/api/v1/hardware/vram");
  assert.equal(vram.status, 200);
  assert.equal(vram.body?.source, "none");
  assert.equal(vram.errorCode, null);
  assert.equal(vram.errorMessage, null);
  assert.ok(vram.ms > 0);
  assert.equal((await getVram(headroom.url, null)).source, "none");

  const refused = await callApi(headroom.url, "/api/v1/models/tiny/load", {
    method: "POST",
    body: { device: "cpu" },
  });
  assert.equal(refused.status, 401);
  assert.equal(refused.errorCode, "unauthorized");
  assert.match(refused.errorMessage!, /token/i);

  const unknown = await callApi(headroom.url, "/api/v1/models/nope/load", {
    method: "POST",
    body: { device: "cpu" },
    token: TOKEN,
  });
  assert.equal(unknown.status, 404);
  assert.equal(unknown.errorCode, "unknown_model");
  assert.match(unknown.errorMessage!, /Unknown model "nope"/);

  const loaded = await callApi<ModelRow>(headroom.url, "/api/v1/models/tiny/load", {
    method: "POST",
    body: { device: "cpu" },
    token: TOKEN,
  });
  assert.equal(loaded.status, 200, loaded.errorMessage ?? "");
  assert.equal(loaded.body?.id, "tiny");
  assert.equal(loaded.body?.placement, "cpu");
});

Deno.test("callApi - no answer is status 0: network when nothing listens, timeout when it stalls", async () => {
  const down = await callApi(`http://127.0.0.1:${closedPort()}`, "/api/v1/hardware/vram");
  assert.equal(down.status, 0);
  assert.equal(down.errorCode, "network");
  assert.ok(down.errorMessage);

  const release = Promise.withResolvers<void>();
  await using stalled = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async () => {
      await release.promise;
      return new Response("late");
    },
  );
  try {
    const slow = await callApi(`http://127.0.0.1:${stalled.addr.port}`, "/", { timeoutMs: 100 });
    assert.equal(slow.status, 0);
    assert.equal(slow.errorCode, "timeout");
  } finally {
    release.resolve();
  }
});

Deno.test("sendApi - OK answers come back unread; failures throw ApiError with the server's code, or the status", async () => {
  await using headroom = await serveHeadroom({
    args: ["--gpu", "cpu"],
    models: [{ id: "tiny", source: "synthetic:64KiB" }],
  });
  const ok = await sendApi(`${headroom.url}/api/v1/models/tiny/load`, {
    method: "POST",
    body: JSON.stringify({ device: "cpu" }),
  });
  assert.equal((await ok.json()).placement, "cpu");
  await assert.rejects(
    sendApi(`${headroom.url}/api/v1/models/nope/unload`, { method: "POST", body: "{}" }),
    (error: unknown) =>
      error instanceof ApiError && error.status === 404 && error.code === "unknown_model",
  );
  await assert.rejects(
    sendApi(`http://127.0.0.1:${closedPort()}/`, {}),
    (error: unknown) => error instanceof ApiError && error.status === 0 && error.code === "network",
  );

  // A proxy's error page is not our JSON: the code and message come from the status.
  await using proxy = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => new Response("<h1>Bad gateway</h1>", { status: 502 }),
  );
  const base = `http://127.0.0.1:${proxy.addr.port}`;
  await assert.rejects(
    sendApi(`${base}/api/v1/models`, {}),
    (error: unknown) =>
      error instanceof ApiError && error.code === "http_502" && error.message === "HTTP 502",
  );
  const asData = await callApi(base, "/api/v1/models");
  assert.equal(asData.status, 502);
  assert.equal(asData.errorCode, "http_502");
  assert.equal(asData.errorMessage, "<h1>Bad gateway</h1>");
});
