/**
 * One vocabulary for failures: every pipeline error code has an HTTP answer in the one
 * table (server/http/pipeline_errors.ts), every worker error code becomes a pipeline error
 * in the one place (workers/manager/worker_errors.ts), and a worker's error reaches an HTTP
 * client as the status and code it always did (the expected answers below are written
 * out, not read from the tables).
 */
import assert from "node:assert/strict";
import { Hono } from "hono";
import { Catalog } from "../core/models/catalog.ts";
import { EventLog } from "../core/events.ts";
import { PIPELINE_ERROR_CODES, PipelineError } from "../core/pipelines/pipeline_error.ts";
import {
  type ErrorReply,
  type RequestKind,
  WORKER_ERROR_CODES,
  type WorkerErrorCode,
  type WorkerStatus,
} from "../core/pipelines/protocol.ts";
import { PIPELINE_ERROR_HTTP } from "../server/http/pipeline_errors.ts";
import { handleError } from "../server/http/http_error.ts";
import { WORKER_ERROR_MAP } from "../workers/manager/worker_errors.ts";
import { PipelineManager, type WorkerHandle } from "../workers/manager.ts";
import { WorkerDiedError } from "../workers/client.ts";
import { doubleCatalogModel } from "./_worker_double.ts";

Deno.test("error table - every pipeline error code has an HTTP status, and only those", () => {
  assert.deepEqual(
    Object.keys(PIPELINE_ERROR_HTTP).sort(),
    [...PIPELINE_ERROR_CODES].sort(),
  );
  for (const code of PIPELINE_ERROR_CODES) {
    const { status } = PIPELINE_ERROR_HTTP[code];
    assert.ok(status >= 400 && status <= 599, `${code} answers ${status}, not an error status`);
  }
});

Deno.test("error table - every worker error code becomes a pipeline error at each stage", () => {
  for (const stage of ["run", "move"] as const) {
    assert.deepEqual(
      Object.keys(WORKER_ERROR_MAP[stage]).sort(),
      [...WORKER_ERROR_CODES].sort(),
      `the ${stage} stage maps every worker error code`,
    );
    for (const code of WORKER_ERROR_CODES) {
      assert.ok(
        (PIPELINE_ERROR_CODES as readonly string[]).includes(WORKER_ERROR_MAP[stage][code]),
        `${stage}/${code} maps to a pipeline error code`,
      );
    }
  }
});

/** What a worker failure answered over HTTP before the tables were merged: status and code. */
const RUN_ANSWERS: Record<WorkerErrorCode, [number, string]> = {
  oom: [507, "oom"],
  bad_input: [400, "bad_input"],
  bad_tensor: [400, "bad_tensor"],
  not_loaded: [500, "run_failed"],
  load_failed: [500, "run_failed"],
  run_failed: [500, "run_failed"],
  no_webgpu: [500, "run_failed"],
  internal: [500, "run_failed"],
};
const LOAD_ANSWERS: Record<WorkerErrorCode, [number, string]> = {
  oom: [507, "oom"],
  no_webgpu: [503, "no_webgpu"],
  bad_input: [500, "load_failed"],
  bad_tensor: [500, "load_failed"],
  not_loaded: [500, "load_failed"],
  load_failed: [500, "load_failed"],
  run_failed: [500, "load_failed"],
  internal: [500, "load_failed"],
};

/**
 * A PipelineManager over worker doubles whose runs (or GPU loads) answer with the error
 * code the model id names ("run-oom", "load-no_webgpu"), behind a Hono app with the
 * service's error handler.
 */
function appOverFailingWorkers(): { app: Hono; host: PipelineManager } {
  const ids = WORKER_ERROR_CODES.flatMap((code) => [`run-${code}`, `load-${code}`]);
  ids.push("died", "clone", "ok");
  const models = ids.map((id) => doubleCatalogModel(id));
  const host = new PipelineManager({
    catalog: new Catalog(models, "/nonexistent"),
    events: new EventLog(),
    gpuAvailable: true,
    parityTolerance: null,
    scanModelFile: (path) =>
      Promise.resolve({ path, graphBytes: 0, externalData: [], totalBytes: 0 }),
    startWorker: (spec) => Promise.resolve(failingWorker(spec.modelId)),
  });
  const app = new Hono();
  app.onError(handleError);
  app.post("/api/v1/run/:id", async (c) => {
    const id = c.req.param("id");
    await host.load(id, "cpu");
    await host.run(id, { kind: "tensors", tensors: {} });
    return c.json({ ok: true });
  });
  app.post("/api/v1/load/:id", async (c) => {
    await host.load(c.req.param("id"), "gpu");
    return c.json({ ok: true });
  });
  app.post("/api/v1/queue-full", () => {
    throw new PipelineError("queue_full", "too many waiting");
  });
  return { app, host };
}

function failingWorker(id: string): WorkerHandle {
  let device: "gpu" | "cpu" | "none" = "none";
  let dead: string | null = null;
  const exits: Array<(reason: string) => void> = [];
  const status = (): WorkerStatus => ({
    device,
    gpuBuffers: 0,
    gpuBytes: 0,
    gpuPeakBytes: 0,
    rssBytes: 0,
    inputs: [],
    outputs: [],
    build: "wasm",
    engine: device === "gpu" ? "webgpu" : device === "cpu" ? "wasm" : "none",
    ramBytes: 0,
  });
  const fail = <K extends RequestKind>(type: K, code: string): ErrorReply<K> => ({
    id: 0,
    type,
    ok: false,
    status: status(),
    error: { code: code as WorkerErrorCode, message: `simulated ${code}` },
    ms: 0,
  });
  const ok = <K extends "load" | "unload">(type: K) => ({
    id: 0,
    type,
    ok: true as const,
    status: status(),
    ms: 0,
  });
  const handle: WorkerHandle = {
    get lastStatus() {
      return status();
    },
    set lastStatus(_value: WorkerStatus) {
      // derived from the double's device; the manager never sets it
    },
    get alive() {
      return dead === null;
    },
    exited: new Promise<string>(() => {}),
    load(to) {
      if (id.startsWith("load-")) return Promise.resolve(fail("load", id.slice(5)));
      device = to;
      return Promise.resolve(ok("load"));
    },
    run() {
      if (id === "died") {
        return Promise.reject(new WorkerDiedError(`Pipeline "${id}" worker died: crashed`));
      }
      if (id === "clone") {
        return Promise.reject(new DOMException("could not clone", "DataCloneError"));
      }
      if (id.startsWith("run-")) return Promise.resolve(fail("run", id.slice(4)));
      return Promise.resolve({
        id: 0,
        type: "run" as const,
        ok: true as const,
        status: status(),
        ms: 0,
        output: { kind: "tensors" as const, tensors: {} },
      });
    },
    offload: () => Promise.reject(new Error("not used")),
    rehydrate: () => Promise.reject(new Error("not used")),
    unload: () => Promise.resolve(ok("unload")),
    parity: () => Promise.reject(new Error("not used")),
    onExit(cb) {
      exits.push(cb);
    },
    terminate(reason = "terminated") {
      if (dead !== null) return;
      dead = reason;
      for (const cb of exits.splice(0)) cb(reason);
    },
  };
  return handle;
}

async function answer(app: Hono, path: string): Promise<[number, string]> {
  const response = await app.request(path, { method: "POST" });
  const body = await response.json();
  return [response.status, body.error?.code ?? "none"];
}

Deno.test("error table - a worker's error reply answers over HTTP as it always did", async () => {
  const { app, host } = appOverFailingWorkers();
  try {
    for (const code of WORKER_ERROR_CODES) {
      assert.deepEqual(
        await answer(app, `/api/v1/run/run-${code}`),
        RUN_ANSWERS[code],
        `a run that failed with ${code}`,
      );
      assert.deepEqual(
        await answer(app, `/api/v1/load/load-${code}`),
        LOAD_ANSWERS[code],
        `a GPU load that failed with ${code}`,
      );
    }
    assert.deepEqual(await answer(app, "/api/v1/run/ok"), [200, "none"]);
  } finally {
    host.close();
  }
});

Deno.test("error table - a dead worker is 503 worker_died; an uncloneable input is 400; a full queue says when to retry", async () => {
  const { app, host } = appOverFailingWorkers();
  try {
    assert.deepEqual(await answer(app, "/api/v1/run/died"), [503, "worker_died"]);
    assert.deepEqual(await answer(app, "/api/v1/run/clone"), [400, "bad_input"]);
    const response = await app.request("/api/v1/queue-full", { method: "POST" });
    assert.equal(response.status, 429);
    assert.equal(response.headers.get("retry-after"), "1");
    assert.equal((await response.json()).error.code, "queue_full");
  } finally {
    host.close();
  }
});
