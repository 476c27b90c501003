/**
 * A hostile plugin costs only its own pipeline (issue 20, findings 1, 5–8, 17, 18). Each
 * test starts a real service in a subprocess (a plugin that kills or aborts the process
 * would otherwise take the test runner with it) with the plugin's model and a plain
 * bystander model, makes the plugin try one attack, and checks that the attack got
 * nowhere, that its request answers with the cause, and that the service, the bystander
 * and the decision queue go on.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { startServerProcess } from "../scripts/_lib/server_process.ts";
import { addonDir } from "../workers/engines/native.ts";
import { DEFAULT_ORT_NODE_DIR } from "../workers/engines/choose.ts";
import { replyProblem } from "../workers/reply_check.ts";
import { writeModelsFile } from "./fixtures/artifact.ts";
import { exists } from "./_requires.ts";
import type { Attempt } from "./fixtures/hostile_plugin.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const HOSTILE = fileURLToPath(new URL("./fixtures/hostile_plugin.ts", import.meta.url));
const HANG = fileURLToPath(new URL("./fixtures/hang_at_import_plugin.ts", import.meta.url));

/** The engine library a native worker may load (its FFI grant on main). */
function engineLibrary(): string | null {
  try {
    const dir = addonDir(Deno.realPathSync(DEFAULT_ORT_NODE_DIR));
    const path = `${dir}/libonnxruntime.so.1`;
    return Deno.statSync(path).isFile ? path : null;
  } catch {
    return null;
  }
}

interface Hostile extends AsyncDisposable {
  url: string;
  post(path: string, body: unknown, timeoutMs?: number): Promise<Response>;
  /** The bystander answers a tensor request with 200 (within `timeoutMs`). */
  bystanderAnswers(timeoutMs?: number): Promise<void>;
  dir: string;
  /** The synthetic models' input width. */
  width: number;
}

/** A service on the CPU with `models` (plus a bystander, loaded), in a subprocess. */
async function hostileService(
  models: unknown[],
  options: { env?: Record<string, string>; requestTimeout?: string } = {},
): Promise<Hostile> {
  const dir = await Deno.makeTempDir({ prefix: "headroom-hostile-" });
  const modelsFile = writeModelsFile([
    ...models,
    { id: "bystander", source: "synthetic:64KiB" },
  ]);
  const server = await startServerProcess({
    args: [
      "run",
      "--allow-all",
      `${ROOT}main.ts`,
      "--port",
      "0",
      "--gpu",
      "cpu",
      "--models",
      modelsFile,
      "--request-timeout",
      options.requestTimeout ?? "60s",
    ],
    cwd: ROOT,
    env: { HEADROOM_DATA_DIR: dir, ...options.env },
  });
  const post = (path: string, body: unknown, timeoutMs = 30_000) =>
    fetch(`${server.url}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
  const loaded = await post("/api/v1/models/bystander/load", { device: "cpu" });
  const loadText = await loaded.text();
  assert.equal(loaded.status, 200, loadText);
  const width = JSON.parse(loadText).inputs[0].dims[1] as number;
  const bystanderAnswers = async (timeoutMs = 10_000) => {
    const response = await post("/api/v1/pipelines/bystander/infer", {
      inputs: {
        input: {
          type: "float32",
          dims: [1, width],
          data: Array.from({ length: width }, (_, i) => Math.cos(i)),
        },
      },
    }, timeoutMs);
    assert.equal(response.status, 200, await response.text());
  };
  await bystanderAnswers();
  return {
    url: server.url,
    post,
    bystanderAnswers,
    dir,
    width,
    async [Symbol.asyncDispose]() {
      await server.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      await Deno.remove(modelsFile.slice(0, modelsFile.lastIndexOf("/")), { recursive: true })
        .catch(() => {});
    },
  };
}

const HOSTILE_MODEL = { id: "hostile", source: "synthetic:64KiB", plugin: HOSTILE };

/** Runs the hostile plugin with `payload`; answers the response. */
function hostile(service: Hostile, payload: unknown, timeoutMs = 30_000): Promise<Response> {
  return service.post("/api/v1/pipelines/hostile/infer", { payload }, timeoutMs);
}

/** The hostile pipeline still serves a plain request (with a fresh plugin process if need be). */
async function hostileRecovers(service: Hostile): Promise<void> {
  const response = await hostile(service, {
    values: Array.from({ length: service.width }, (_, i) => i),
  });
  assert.equal(response.status, 200, await response.text());
}

async function healthy(service: Hostile): Promise<void> {
  const response = await fetch(`${service.url}/api/v1/health`, {
    signal: AbortSignal.timeout(5_000),
  });
  assert.equal(response.status, 200, await response.text());
}

Deno.test({
  name:
    "plugin sandbox - a plugin cannot reach libc through the engine library's FFI handle (system, getenv)",
  ignore: engineLibrary() === null,
}, async () => {
  const secret = `secret-${crypto.randomUUID()}`;
  await using service = await hostileService([HOSTILE_MODEL], {
    env: { HEADROOM_CPU_ENGINE: "native", HEADROOM_SANDBOX_SECRET: secret },
  });
  const touchPath = `${service.dir}/system-ran`;
  const response = await hostile(service, {
    escape: { library: engineLibrary(), touchPath, envName: "HEADROOM_SANDBOX_SECRET" },
  });
  const text = await response.text();
  assert.equal(response.status, 200, text);
  const result: Attempt = JSON.parse(text).output;
  assert.equal(exists(touchPath), false, "system() ran a command");
  assert.ok(!text.includes(secret), "getenv() read the service's environment");
  assert.equal(result.refused, true, JSON.stringify(result));
  assert.match(result.message, /Requires ffi access/);
  await service.bystanderAnswers();
});

Deno.test("plugin sandbox - Deno.kill(Deno.pid, SIGTERM) from a plugin ends only its own pipeline", async () => {
  await using service = await hostileService([HOSTILE_MODEL]);
  const started = performance.now();
  const response = await hostile(service, { kill: true });
  const body = await response.json();
  assert.equal(response.status, 503, JSON.stringify(body));
  assert.equal(body.error.code, "worker_died");
  assert.match(body.error.message, /plugin process was killed by SIGTERM/);
  assert.ok(performance.now() - started < 10_000, "noticed at once, not at the request timeout");
  await healthy(service);
  await service.bystanderAnswers();
  await hostileRecovers(service);
});

Deno.test("plugin sandbox - a plugin's npm: import is refused without a registry request", async () => {
  const asked: string[] = [];
  const registry = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    asked.push(new URL(request.url).pathname);
    return new Response("{}", { status: 404 });
  });
  try {
    await using service = await hostileService([HOSTILE_MODEL], {
      env: { NPM_CONFIG_REGISTRY: `http://127.0.0.1:${registry.addr.port}/` },
    });
    const name = `headroom-canary-${crypto.randomUUID().slice(0, 8)}`;
    const response = await hostile(service, { npm: name });
    const text = await response.text();
    assert.equal(response.status, 200, text);
    const result: Attempt = JSON.parse(text).output;
    assert.equal(result.refused, true, JSON.stringify(result));
    // The service itself may ask for its own packages (a new registry is a new cache);
    // nothing may ask for the name the plugin chose.
    assert.deepEqual(asked.filter((path) => path.includes(name)), [], "the registry was asked");
    await service.bystanderAnswers();
  } finally {
    await registry.shutdown();
  }
});

Deno.test("plugin sandbox - a plugin that exhausts its heap fails its own pipeline; a bystander answers", async () => {
  await using service = await hostileService([HOSTILE_MODEL]);
  const exhausted = hostile(service, { heap: true }, 60_000);
  exhausted.catch(() => {}); // awaited below; a failure before then is reported there
  await service.bystanderAnswers();
  const response = await exhausted;
  const body = await response.json();
  assert.equal(response.status, 503, JSON.stringify(body));
  assert.equal(body.error.code, "worker_died");
  assert.match(body.error.message, /ran out of its \d+ MiB heap/);
  await healthy(service);
  await service.bystanderAnswers();
  await hostileRecovers(service);
});

Deno.test("plugin sandbox - a plugin's off-heap buffers show in its row (pluginRssBytes)", async () => {
  await using service = await hostileService([HOSTILE_MODEL]);
  const held = 256 * 2 ** 20;
  const response = await hostile(service, { offHeap: held });
  assert.equal(response.status, 200, await response.text());
  const row = await (await fetch(`${service.url}/api/v1/models/hostile`)).json();
  assert.ok(
    row.pluginRssBytes >= held,
    `pluginRssBytes ${row.pluginRssBytes} should count the ${held} bytes the plugin holds`,
  );
  const bystander = await (await fetch(`${service.url}/api/v1/models/bystander`)).json();
  assert.equal(bystander.pluginRssBytes, null, "a model without a plugin has no plugin process");
});

Deno.test("plugin sandbox - a plugin past its memory cap (HEADROOM_PLUGIN_MEMORY) is ended: 503 naming the cap, its row says why, a bystander answers", async () => {
  await using service = await hostileService([HOSTILE_MODEL], {
    env: { HEADROOM_PLUGIN_MEMORY: "192MiB" },
  });
  const held = 256 * 2 ** 20;
  const cause = /held \d+ MiB resident, over its 192 MiB memory cap .*HEADROOM_PLUGIN_MEMORY/;
  // Held while the request runs (it never answers): the watch on an interval ends it.
  const started = performance.now();
  const waiting = await hostile(service, { offHeap: held, thenWait: true }, 20_000);
  const waitingBody = await waiting.json();
  assert.equal(waiting.status, 503, JSON.stringify(waitingBody));
  assert.equal(waitingBody.error.code, "worker_died");
  assert.match(waitingBody.error.message, cause);
  assert.ok(performance.now() - started < 10_000, "ended while it ran, not at the request timeout");
  const row = await (await fetch(`${service.url}/api/v1/models/hostile`)).json();
  assert.equal(row.state, "failed", JSON.stringify(row));
  assert.match(row.error, cause);
  await healthy(service);
  await service.bystanderAnswers();
  // Held and answered, in a fresh process: the check after the reply (or the watch, if it
  // reads first) fails that request too.
  const answered = await hostile(service, { offHeap: held }, 20_000);
  const answeredBody = await answered.json();
  assert.equal(answered.status, 503, JSON.stringify(answeredBody));
  assert.match(answeredBody.error.message, cause);
  await service.bystanderAnswers();
  await hostileRecovers(service);
});

Deno.test("plugin sandbox - a plugin that hangs at import fails its load by the deadline; the bystander, offload, unload and switch answer", async () => {
  await using service = await hostileService(
    [{ id: "hang", source: "synthetic:64KiB", plugin: HANG }],
    { requestTimeout: "4s" },
  );
  const started = performance.now();
  const load = service.post("/api/v1/models/hang/load", { device: "cpu" }, 30_000);
  load.catch(() => {}); // awaited below; a failure before then is reported there
  await new Promise((resolve) => setTimeout(resolve, 500));
  // A model already loaded is served while the other load hangs.
  await service.bystanderAnswers(2_000);
  const moves = [
    service.post("/api/v1/models/bystander/offload", {}, 30_000),
    service.post("/api/v1/models/bystander/unload", {}, 30_000),
    service.post("/v1/models/switch", { model: "bystander" }, 30_000),
  ];
  for (const move of moves) move.catch(() => {});
  const loadResponse = await load;
  const loadBody = await loadResponse.json();
  assert.equal(loadResponse.status >= 400, true, JSON.stringify(loadBody));
  assert.match(loadBody.error.message, /did not import and initialise within 4000 ms/);
  assert.ok(performance.now() - started < 15_000, "the load ended by its deadline");
  for (const response of await Promise.all(moves)) {
    const text = await response.text();
    assert.ok(response.status < 500, `${response.url}: ${response.status} ${text}`);
  }
  await service.bystanderAnswers();
  const models = (await (await fetch(`${service.url}/api/v1/models`)).json()).models;
  const hang = models.find((m: { id: string }) => m.id === "hang");
  assert.notEqual(hang.state, "loading", "the hung model is not left loading");
});

Deno.test("plugin sandbox - forged status and reply ids end the plugin's pipeline with the cause, never a negative figure", async () => {
  await using service = await hostileService([HOSTILE_MODEL]);
  const response = await hostile(service, { forge: true }, 20_000);
  const body = await response.json();
  assert.equal(response.status, 503, JSON.stringify(body));
  assert.match(body.error.message, /answered request 999999, which it was not running/);
  assert.doesNotMatch(body.error.message, /Cannot read properties/);
  const models = (await (await fetch(`${service.url}/api/v1/models`)).json()).models;
  const figures = JSON.stringify(models);
  assert.doesNotMatch(figures, /-5000000000000|"gpuBytes":-/, "a forged figure was shown");
  await service.bystanderAnswers();
  await hostileRecovers(service);
});

for (const how of ["close", "exit"] as const) {
  Deno.test(`plugin sandbox - a plugin that calls ${how === "close" ? "self.close()" : "Deno.exit()"} is noticed at once: 503 with the cause`, async () => {
    await using service = await hostileService([HOSTILE_MODEL]);
    const started = performance.now();
    const response = await hostile(service, { exit: how }, 20_000);
    const body = await response.json();
    assert.ok(performance.now() - started < 10_000, "noticed at once, not at the request timeout");
    assert.equal(response.status, 503, JSON.stringify(body));
    assert.equal(body.error.code, "worker_died");
    assert.match(body.error.message, /plugin process exited with code \d+/);
    await service.bystanderAnswers();
    await hostileRecovers(service);
  });
}

Deno.test("worker replies - forged status figures, ids and kinds are refused by the host's check", () => {
  const status = {
    device: "cpu",
    gpuBuffers: 0,
    gpuBytes: 0,
    gpuPeakBytes: 0,
    rssBytes: 1,
    inputs: [],
    outputs: [],
    build: "wasm",
    engine: "wasm",
    ramBytes: 0,
  };
  const good = { id: 3, type: "load", ok: true, status, ms: 1 };
  assert.equal(replyProblem(good, "load"), null);
  assert.match(
    replyProblem({ ...good, status: { ...status, gpuBytes: -5e12 } }, "load")!,
    /gpuBytes/,
  );
  assert.match(
    replyProblem({ ...good, status: { ...status, ramBytes: 1.5 } }, "load")!,
    /ramBytes/,
  );
  assert.match(replyProblem(good, "run")!, /type|output/);
  assert.match(
    replyProblem({ ...good, ok: false, error: { code: "pwned", message: "" } }, "load")!,
    /error\.code/,
  );
  const tensor = { type: "float32", dims: [2], data: new Float32Array(3) };
  assert.match(
    replyProblem({
      ...good,
      type: "run",
      output: { kind: "tensors", tensors: { y: tensor } },
    }, "run")!,
    /elements/,
  );
});
