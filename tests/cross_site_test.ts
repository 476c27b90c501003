// Cross-site control: the reproductions from issue 12, run with curl against a real
// server on loopback. A foreign page's "simple" request (text/plain, foreign Origin)
// and a DNS-rebound Host must change nothing; the service's own pages still work.
import assert from "node:assert/strict";
import type { Config } from "../core/config.ts";
import { serveHeadroom } from "../server/serve_headroom.ts";

const MODEL = "tiny";

/** A served Headroom (CPU only, one tiny synthetic model) on 127.0.0.1:<free port>. */
async function serve(overrides: Partial<Config> = {}) {
  const headroom = await serveHeadroom({
    config: { gpu: "cpu", ...overrides },
    models: [{ id: MODEL, source: "synthetic:64KiB" }],
    tempPrefix: "headroom-xsite-",
  });
  return {
    base: headroom.url,
    port: headroom.server.addr.port,
    service: headroom.service,
    [Symbol.asyncDispose]: headroom.close,
  };
}

/** Runs curl; answers the status and the body. */
async function curl(args: string[]): Promise<{ status: number; body: string }> {
  const out = await new Deno.Command("curl", {
    args: ["-s", "-o", "-", "-w", "\n%{http_code}", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  const cut = text.lastIndexOf("\n");
  return { status: Number(text.slice(cut + 1)), body: text.slice(0, cut) };
}

Deno.test("cross-site - a foreign page's text/plain switch is refused and unloads nothing", async () => {
  await using s = await serve();
  await s.service.services.scheduler.load(MODEL, "cpu");
  // The reproduction, verbatim but for the port.
  const attack = await curl([
    "-X",
    "POST",
    `${s.base}/v1/models/switch`,
    "-H",
    "Origin: https://evil.example",
    "-H",
    "Content-Type: text/plain",
    "-d",
    `{"model":"${MODEL}"}`,
  ]);
  assert.equal(attack.status, 403, attack.body);
  const body = JSON.parse(attack.body);
  assert.equal(body.error.code, "forbidden_origin");
  assert.match(body.error.message, /HEADROOM_CORS_ORIGINS/);
  // A foreign page's unload with no body at all (a form post) is refused the same way.
  const unload = await curl([
    "-X",
    "POST",
    `${s.base}/api/v1/models/${MODEL}/unload`,
    "-H",
    "Origin: https://evil.example",
  ]);
  assert.equal(unload.status, 403);
  assert.equal(s.service.services.scheduler.model(MODEL).state, "cpu", "still loaded");
  // Without an Origin (curl, a script), text/plain is still not JSON: 415, nothing changes.
  const plain = await curl([
    "-X",
    "POST",
    `${s.base}/v1/models/switch`,
    "-H",
    "Content-Type: text/plain",
    "-d",
    `{"model":"${MODEL}"}`,
  ]);
  assert.equal(plain.status, 415, plain.body);
  assert.match(JSON.parse(plain.body).error.message, /application\/json/);
  const form = await curl([`${s.base}/api/v1/models/${MODEL}/load`, "-d", "device=cpu"]);
  assert.equal(form.status, 415, "a form post (urlencoded) is refused");
  // The message names the path that was called, not the route's pattern.
  assert.match(
    JSON.parse(form.body).error.message,
    new RegExp(`POST /api/v1/models/${MODEL}/load:`),
  );
  assert.equal(s.service.services.scheduler.model(MODEL).state, "cpu", "still loaded");
});

Deno.test("cross-site - the service's own origin and listed origins may mutate", async () => {
  await using s = await serve({ corsOrigins: ["https://ops.example"] });
  for (const origin of [s.base, `http://localhost:${s.port}`, "https://ops.example"]) {
    const host = origin.startsWith("https://") ? `127.0.0.1:${s.port}` : new URL(origin).host;
    const answer = await curl([
      "-X",
      "POST",
      `${s.base}/api/v1/models/${MODEL}/load`,
      "-H",
      `Host: ${host}`,
      "-H",
      `Origin: ${origin}`,
      "-H",
      "Content-Type: application/json",
      "-d",
      '{"device":"cpu"}',
    ]);
    // Past the guard: the first load answers 200, a repeat 409 as not offered (on the CPU already).
    if (origin === s.base) assert.equal(answer.status, 200, `${origin}: ${answer.body}`);
    else {
      assert.equal(answer.status, 409, `${origin}: ${answer.body}`);
      assert.match(answer.body, /"code":"not_offered"/);
    }
  }
  assert.equal(s.service.services.scheduler.model(MODEL).state, "cpu");
});

Deno.test("cross-site - a foreign Host is refused on loopback (DNS rebinding), listed ones pass", async () => {
  {
    await using s = await serve();
    const rebound = await curl([`${s.base}/api/v1/hardware/vram`, "-H", "Host: evil.example"]);
    assert.equal(rebound.status, 403, rebound.body);
    assert.equal(JSON.parse(rebound.body).error.code, "forbidden_host");
    assert.match(JSON.parse(rebound.body).error.message, /HEADROOM_ALLOWED_HOSTS/);
    const withPort = await curl([`${s.base}/`, "-H", `Host: evil.example:${s.port}`]);
    assert.equal(withPort.status, 403, "the page is not served to a rebound name either");
    for (const host of ["localhost", `127.0.0.1:${s.port}`, `[::1]:${s.port}`, "127.1.2.3"]) {
      const ok = await curl([`${s.base}/api/v1/health`, "-H", `Host: ${host}`]);
      assert.equal(ok.status, 200, host);
    }
  }
  await using s = await serve({ allowedHosts: ["gpu-box.internal"] });
  const listed = await curl([`${s.base}/api/v1/health`, "-H", "Host: gpu-box.internal:8000"]);
  assert.equal(listed.status, 200);
  const other = await curl([`${s.base}/api/v1/health`, "-H", "Host: evil.example"]);
  assert.equal(other.status, 403);
});

Deno.test("cross-site - a name that only starts like 127.x is refused, with its matching Origin too", async () => {
  await using s = await serve({ token: "r".repeat(20) });
  // A rebound page on 127.0.0.1.evil.example sends the Host and the matching Origin; on main
  // `startsWith("127.")` let both pass: it read the report and ran inference.
  const rebound = `127.0.0.1.evil.example:${s.port}`;
  for (const host of [rebound, "127.0.0.1.evil.example", "localhost.evil.example", "127.0.0.256"]) {
    const read = await curl([`${s.base}/api/v1/hardware/vram`, "-H", `Host: ${host}`]);
    assert.equal(read.status, 403, `${host}: ${read.body}`);
    assert.equal(JSON.parse(read.body).error.code, "forbidden_host");
  }
  const infer = await curl([
    "-X",
    "POST",
    `${s.base}/api/v1/pipelines/${MODEL}/infer`,
    "-H",
    `Host: ${rebound}`,
    "-H",
    `Origin: http://${rebound}`,
    "-H",
    "Content-Type: application/json",
    "-d",
    "{}",
  ]);
  assert.equal(infer.status, 403, infer.body);
  // The same parser holds the Origin: a rebound origin against a loopback Host is foreign.
  const load = await curl([
    "-X",
    "POST",
    `${s.base}/api/v1/models/${MODEL}/load`,
    "-H",
    `Origin: http://${rebound}`,
    "-H",
    "Authorization: Bearer " + "r".repeat(20),
    "-H",
    "Content-Type: application/json",
    "-d",
    '{"device":"cpu"}',
  ]);
  assert.equal(load.status, 403, load.body);
  assert.equal(JSON.parse(load.body).error.code, "forbidden_origin");
  assert.equal(s.service.services.scheduler.model(MODEL).state, "unloaded");
});

Deno.test("cross-site - a WebSocket from a foreign page is refused before the upgrade", async () => {
  await using s = await serve();
  const answer = await curl([
    `${s.base}/api/v1/pipelines/${MODEL}/stream`,
    "-H",
    "Connection: Upgrade",
    "-H",
    "Upgrade: websocket",
    "-H",
    "Sec-WebSocket-Version: 13",
    "-H",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "-H",
    "Origin: https://evil.example",
  ]);
  assert.equal(answer.status, 403, answer.body);
});

Deno.test("cross-site - beyond loopback the Host check is off (the token guards mutations)", async () => {
  const token = "t".repeat(20);
  await using s = await serve({ host: "0.0.0.0", token });
  const answer = await curl([`${s.base}/api/v1/health`, "-H", "Host: gpu-box.example"]);
  assert.equal(answer.status, 200);
});

Deno.test("cross-site - a listed origin gets CORS on /v1 too (browser OpenAI clients)", async () => {
  await using s = await serve({ corsOrigins: ["https://chat.example"] });
  const preflight = await curl([
    "-X",
    "OPTIONS",
    `${s.base}/v1/chat/completions`,
    "-H",
    "Origin: https://chat.example",
    "-H",
    "Access-Control-Request-Method: POST",
    "-H",
    "Access-Control-Request-Headers: authorization, content-type",
    "-D",
    "-",
  ]);
  assert.match(preflight.body, /access-control-allow-origin: https:\/\/chat\.example/i);
  const models = await curl([
    `${s.base}/v1/models`,
    "-H",
    "Origin: https://chat.example",
    "-D",
    "-",
  ]);
  assert.equal(models.status, 200);
  assert.match(models.body, /access-control-allow-origin: https:\/\/chat\.example/i);
});
