// The API token, route by route from the manifest: with a token set, every mutating
// route refuses a request without it or with a wrong one (401, JSON, WWW-Authenticate)
// and serves one with the right token; reads stay open. And the server itself refuses
// to bind beyond loopback without a token, unless told --insecure-no-token (loudly).
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { startService } from "../server/service.ts";
import { routes } from "../routes/_manifest.ts";
import { errorShapeOf } from "../server/http/http_error.ts";
import { testConfig } from "./_service.ts";
import { writeArtifact, writeModelsFile } from "./fixtures/artifact.ts";
import { tempDirSync } from "./_temp.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const TOKEN = "s3cret-token-0123456789";
const MODEL = "tiny";

/** A valid body for each mutating route, so that the right token gets a working answer. */
const VALID_BODIES: Record<string, unknown> = {
  "/api/v1/models/test-load": { models: [MODEL], device: "cpu" },
  "/api/v1/models/:id/load": { device: "cpu" },
  "/api/v1/chains": { id: "auth-chain", pipelines: [MODEL] },
  "/v1/models/switch": { model: MODEL },
};

const concrete = (path: string) =>
  path.replace(":id", MODEL).replace(":name", MODEL).replace(":version", "1")
    .replace(":file", "nope.js");

Deno.test("auth - every mutating route needs the token; reads stay open", async () => {
  await using service = await startService(testConfig({
    gpu: "cpu",
    token: TOKEN,
    modelsFile: writeModelsFile([{ id: MODEL, source: "synthetic:64KiB" }]),
  }));
  const request = (method: string, path: string, authorization?: string) => {
    const body = VALID_BODIES[path];
    const headers: Record<string, string> = {};
    if (authorization !== undefined) headers.authorization = authorization;
    if (body !== undefined) headers["content-type"] = "application/json";
    return service.app.request(concrete(path), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  };
  const wrongTokens = [
    undefined,
    "",
    "Bearer",
    "Bearer ",
    `Bearer ${"x".repeat(TOKEN.length)}`,
    `Bearer ${TOKEN}x`,
    `Bearer ${TOKEN.slice(0, -1)}`,
    `Bearer ${TOKEN.toUpperCase()}`,
    `Basic ${btoa(`user:${TOKEN}`)}`,
    TOKEN,
    `Token ${TOKEN}`,
    `Bearer ${TOKEN} ${TOKEN}`,
  ];
  const figures = { mutatingChecked: 0, requestsSent: 0, refused401: 0, servedWithToken: 0 };
  const served: Record<string, number> = {};
  const mutating = routes.filter(([, , config]) => config.auth === "mutating");
  assert.ok(mutating.length >= 8, "the route files mark their mutating routes");
  for (const [path, handlers] of mutating) {
    for (const method of Object.keys(handlers).filter((m) => m !== "GET")) {
      figures.mutatingChecked++;
      for (const authorization of wrongTokens) {
        const response = await request(method, path, authorization);
        figures.requestsSent++;
        const what = `${method} ${path} with ${JSON.stringify(authorization)}`;
        assert.equal(response.status, 401, what);
        assert.match(response.headers.get("www-authenticate") ?? "", /^Bearer realm="headroom"/);
        const body = await response.json();
        if (errorShapeOf(path) === "oip") {
          assert.match(body.error, /token/, `${what}: the Open Inference Protocol's {error}`);
        } else {
          assert.equal(body.error.code, "unauthorized", what);
          assert.equal(typeof body.error.message, "string");
        }
        figures.refused401++;
      }
      for (const authorization of [`Bearer ${TOKEN}`, `bearer ${TOKEN}`, `Bearer   ${TOKEN}  `]) {
        const response = await request(method, path, authorization);
        figures.requestsSent++;
        const text = await response.text();
        assert.notEqual(response.status, 401, `${method} ${path}: ${text}`);
        assert.ok(response.status < 500, `${method} ${path} with the token: ${text}`);
        // The first answer with the token: a repeat may be refused as not offered (409).
        served[`${method} ${path}`] ??= response.status;
        figures.servedWithToken++;
      }
    }
  }
  // The token lets the work happen: the model really loaded and unloaded through the API.
  assert.equal(served[`POST /api/v1/models/:id/load`], 200);
  assert.equal(served[`POST /api/v1/models/:id/unload`], 200);
  assert.equal(served[`POST /api/v1/models/:id/pin`], 200);
  assert.equal(served[`POST /v1/models/switch`], 200);
  assert.equal(served[`POST /v2/repository/models/:name/load`], 200);
  assert.ok([201, 409].includes(served[`POST /api/v1/chains`]), "made, or does not fit the GPU");

  // Reads stay open: every GET of the manifest answers without a token.
  const reads: Record<string, number> = {};
  for (const [path, handlers] of routes) {
    if (!("GET" in handlers)) continue;
    const controller = new AbortController();
    const response = await service.app.request(concrete(path), { signal: controller.signal });
    figures.requestsSent++;
    reads[path] = response.status;
    assert.notEqual(response.status, 401, `GET ${path} is a read`);
    assert.ok(response.status < 500, `GET ${path}: ${response.status}`);
    controller.abort();
    await response.body?.cancel().catch(() => {});
  }
  assert.equal(reads["/api/v1/hardware/vram"], 200);
  assert.equal(reads["/api/v1/models"], 200);
  assert.equal(reads["/api/v1/chains"], 200);
  await writeArtifact("auth_routes", { ...figures, served, reads });
});

/** Runs main.ts with `args` and the HEADROOM_* variables in `env` (no others of ours). */
function runMain(args: string[], env: Record<string, string>): Deno.ChildProcess {
  const base = Object.fromEntries(
    Object.entries(Deno.env.toObject()).filter(([name]) => !name.startsWith("HEADROOM_")),
  );
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--quiet", "main.ts", ...args],
    cwd: ROOT,
    clearEnv: true,
    env: {
      ...base,
      HEADROOM_DATA_DIR: tempDirSync("headroom-auth-"),
      HEADROOM_GPU: "cpu",
      ...env,
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

Deno.test("auth - the server refuses a non-loopback bind without a token", async () => {
  const child = runMain(["--port", "0"], { HEADROOM_HOST: "0.0.0.0" });
  const [status, stdout, stderr] = await Promise.all([
    child.status,
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
  ]);
  assert.equal(status.code, 2, stdout + stderr);
  assert.match(stderr, /HEADROOM_HOST="0\.0\.0\.0": binding beyond loopback needs an API token/);
  assert.match(stderr, /--insecure-no-token/);
  assert.doesNotMatch(stdout, /listening/);
});

Deno.test("auth - --insecure-no-token starts on 0.0.0.0 with a loud warning", async () => {
  const child = runMain(["--port", "0", "--insecure-no-token"], { HEADROOM_HOST: "0.0.0.0" });
  const stderrText = new Response(child.stderr).text();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let stdout = "";
  let port = 0;
  const deadline = setTimeout(() => child.kill("SIGKILL"), 30_000);
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      stdout += value;
      const match = /listening on http:\/\/[^:]+:(\d+)/.exec(stdout);
      if (match) {
        port = Number(match[1]);
        break;
      }
    }
    assert.ok(port > 0, `it did not listen: ${stdout}`);
    // It serves, and with no token set the mutating routes are open (that is the risk).
    const health = await fetch(`http://127.0.0.1:${port}/api/v1/health`);
    assert.equal(health.status, 200);
    await health.body?.cancel();
  } finally {
    clearTimeout(deadline);
    child.kill("SIGTERM");
    reader.releaseLock();
    await child.stdout.cancel().catch(() => {});
  }
  const [status, stderr] = await Promise.all([child.status, stderrText]);
  assert.match(stderr, /WARNING: serving 0\.0\.0\.0 with NO API token/);
  assert.match(stderr, /HEADROOM_TOKEN/);
  assert.ok(status.code === 0 || status.signal === "SIGTERM", JSON.stringify(status));
});

Deno.test("auth - with --token-for-reads the page carries no data until the token is given", async () => {
  await using service = await startService(testConfig({
    gpu: "cpu",
    token: TOKEN,
    tokenForReads: true,
    modelsFile: writeModelsFile([{ id: "secret-model-name", source: "synthetic:64KiB" }]),
  }));
  await service.services.scheduler.load("secret-model-name", "cpu"); // an event and a row
  const page = await service.app.request("/");
  assert.equal(page.status, 200, "the page itself opens (it asks for the token)");
  const html = await page.text();
  // On main the page embedded the whole guarded report: models, events, the ORT path.
  for (const secret of ["secret-model-name", "onnxruntime-node", "ortNodeDir", "Loaded"]) {
    assert.ok(!html.includes(secret), `the page without the token carries "${secret}"`);
  }
  const api = await service.app.request("/api/v1/hardware/vram");
  assert.equal(api.status, 401, "and the API it would fetch is guarded");
  await api.body?.cancel();
  // Signed in (the dashboard's cookie, or the header): the page renders with the data.
  const signedIn = await service.app.request("/", {
    headers: { cookie: `headroom_token=${encodeURIComponent(TOKEN)}` },
  });
  assert.ok((await signedIn.text()).includes("secret-model-name"), "signed in, the rows are there");
  const wrong = await service.app.request("/", { headers: { cookie: "headroom_token=nope" } });
  assert.ok(!(await wrong.text()).includes("secret-model-name"), "a wrong token shows nothing");
});
