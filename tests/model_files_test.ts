/**
 * Model files as users bring them: external data beside the graph (counted in estimates,
 * read by both engines), and the models an engine cannot hold, refused with a 422 that
 * names the limit and the fix: corrupt files, missing external data, a single protobuf of
 * 2 GiB or more, a model too big for the wasm fallback. Big files here are sparse.
 */
import assert from "node:assert/strict";
import protoRoot from "onnx-proto";
import type { onnx as OnnxNamespace } from "onnx-proto";
import { ModelFileError, scanOnnxFile } from "../core/models/external_data.ts";
import { DiskSpaceError, writeSyntheticModel } from "../core/models/synthetic.ts";
import { startService } from "../server/service.ts";
import type { Config } from "../core/config.ts";
import { testConfig } from "./_service.ts";
import { requireWebGpu } from "./_requires.ts";
import { fromWorkerError } from "../workers/manager/worker_errors.ts";
import { PIPELINE_ERROR_HTTP } from "../server/http/pipeline_errors.ts";

const onnx = (protoRoot as unknown as { onnx: typeof OnnxNamespace }).onnx;
const MiB = 2 ** 20;
const GiB = 2 ** 30;

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "headroom-files-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A service serving `models` (id → file path, relative to `dir`). */
async function serve(dir: string, models: Record<string, string>, overrides: Partial<Config> = {}) {
  await Deno.writeTextFile(
    `${dir}/models.json`,
    JSON.stringify({
      models: Object.entries(models).map(([id, source]) => ({ id, source })),
    }),
  );
  return await startService(testConfig({
    gpu: "cpu",
    modelsFile: `${dir}/models.json`,
    dataDir: `${dir}/data`,
    ...overrides,
  }));
}

async function post(
  service: Awaited<ReturnType<typeof startService>>,
  path: string,
  body: unknown,
): Promise<{ status: number; json: { error?: { code: string; message: string } } }> {
  const response = await service.app.request(path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: response.status, json: await response.json() };
}

Deno.test("model files - scan lists the external data file and counts it in the model's bytes", async () => {
  await withDir(async (dir) => {
    const info = await writeSyntheticModel(`${dir}/m.onnx`, 4 * MiB, { seed: 2 });
    const scan = await scanOnnxFile(info.path);
    assert.equal(scan.externalData.length, 1);
    assert.equal(scan.externalData[0].location, "m.onnx.data");
    assert.equal(scan.externalData[0].path, `${dir}/m.onnx.data`);
    assert.equal(scan.totalBytes, info.fileBytes);
    assert.ok(scan.graphBytes < 64 * 1024 && scan.totalBytes > 4 * MiB);
    const single = await writeSyntheticModel(`${dir}/s.onnx`, MiB, { externalData: false });
    assert.deepEqual((await scanOnnxFile(single.path)).externalData, []);
  });
});

Deno.test("model files - external data outside the model's folder is refused", async () => {
  await withDir(async (dir) => {
    const bytes = onnx.ModelProto.encode({
      irVersion: 8,
      opsetImport: [{ domain: "", version: 13 }],
      graph: {
        name: "g",
        initializer: [{
          name: "w",
          dims: [4],
          dataType: onnx.TensorProto.DataType.FLOAT,
          dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
          externalData: [{ key: "location", value: "../../etc/passwd" }, {
            key: "length",
            value: "16",
          }],
        }],
      },
    }).finish();
    await Deno.writeFile(`${dir}/evil.onnx`, bytes);
    await assert.rejects(() => scanOnnxFile(`${dir}/evil.onnx`), (error: Error) => {
      assert.ok(error instanceof ModelFileError);
      assert.match(error.message, /"\.\.\/\.\.\/etc\/passwd" outside its folder/);
      return true;
    });
  });
});

const webgpu = await requireWebGpu();

Deno.test("model files - external data symlinked out of the model's folder is refused with 422 on every engine", async () => {
  await withDir(async (dir) => {
    // The issue's reproduction: a model whose ".data" is a symlink to a secret file; on main
    // the wasm and webgpu engines read the secret's bytes, the native one answered 500.
    await Deno.mkdir(`${dir}/m`);
    await writeSyntheticModel(`${dir}/m/m.onnx`, MiB);
    await Deno.rename(`${dir}/m/m.onnx.data`, `${dir}/secret.bin`);
    await Deno.symlink(`${dir}/secret.bin`, `${dir}/m/m.onnx.data`);
    await assert.rejects(
      () => scanOnnxFile(`${dir}/m/m.onnx`),
      /resolves to .*secret\.bin, outside/,
    );
    const engines: [string, Partial<Config>, "cpu" | "gpu"][] = [
      ["wasm", { cpuEngine: "wasm" }, "cpu"],
      ["native", { cpuEngine: "native" }, "cpu"],
      ...(webgpu
        ? [
          ["webgpu", { gpu: "software", vramBudget: { kind: "bytes", bytes: 4 * GiB } }, "gpu"] as [
            string,
            Partial<Config>,
            "gpu",
          ],
        ]
        : []),
    ];
    for (const [engine, overrides, device] of engines) {
      await using service = await serve(dir, { m: "./m/m.onnx" }, overrides);
      for (
        const { status, json } of [
          await post(service, "/api/v1/models/m/load", { device }),
          await post(service, "/api/v1/pipelines/m/infer", {
            inputs: { input: { type: "float32", dims: [1, 1], data: [0] } },
          }),
        ]
      ) {
        assert.equal(status, 422, `${engine}: ${JSON.stringify(json)}`);
        assert.equal(json.error?.code, "bad_model", engine);
        assert.match(
          json.error!.message,
          /outside the model's folder .*copy the data file/,
          engine,
        );
      }
    }
  });
});

Deno.test("model files - the native engine's own external-data refusal maps to the same 422", () => {
  // onnxruntime-node's message, as it refused the symlinked file above (measured here).
  const message = "External data path validation failed for initializer: w0. Error: External " +
    'data path escapes model directory. External data path: "m.onnx.data"';
  const error = fromWorkerError("move", { code: "load_failed", message }, `Model "m": ${message}`);
  assert.equal(error.code, "bad_model");
  assert.equal(PIPELINE_ERROR_HTTP[error.code].status, 422);
});

Deno.test({
  name: "model files - corrupt, truncated or missing data answer 422 naming the file and fix",
  fn: async () => {
    await withDir(async (dir) => {
      await Deno.writeFile(`${dir}/noise.onnx`, crypto.getRandomValues(new Uint8Array(4096)));
      await Deno.writeTextFile(`${dir}/text.onnx`, "<html>404 Not Found</html>\n");
      const cut = await writeSyntheticModel(`${dir}/cut.onnx`, MiB, { externalData: false });
      await Deno.truncate(cut.path, Math.floor(cut.fileBytes / 2));
      await writeSyntheticModel(`${dir}/lost.onnx`, MiB);
      await Deno.remove(`${dir}/lost.onnx.data`);
      await writeSyntheticModel(`${dir}/short.onnx`, MiB);
      await Deno.truncate(`${dir}/short.onnx.data`, 1000);
      await using service = await serve(dir, {
        noise: "./noise.onnx",
        text: "./text.onnx",
        cut: "./cut.onnx",
        lost: "./lost.onnx",
        short: "./short.onnx",
      });
      for (const id of ["noise", "text", "cut"]) {
        const { status, json } = await post(service, `/api/v1/models/${id}/load`, {
          device: "cpu",
        });
        assert.equal(status, 422, `${id}: ${JSON.stringify(json)}`);
        assert.equal(json.error?.code, "bad_model");
        assert.match(json.error!.message, new RegExp(`${id}\\.onnx is not a valid ONNX model`));
        assert.match(json.error!.message, /re-export or re-download it/);
      }
      const lost = await post(service, "/api/v1/pipelines/lost/infer", {
        inputs: { input: { type: "float32", dims: [1, 1], data: [0] } },
      });
      assert.equal(lost.status, 422, JSON.stringify(lost.json));
      assert.match(lost.json.error!.message, /lost\.onnx\.data, which is missing/);
      const short = await post(service, "/api/v1/models/short/load", { device: "cpu" });
      assert.equal(short.status, 422);
      assert.match(short.json.error!.message, /has 1000 bytes.*truncated/);
      const models = await (await service.app.request("/api/v1/models")).json();
      for (const model of models.models ?? models) {
        assert.equal(model.state, "unloaded", `${model.id} was refused, not failed`);
        assert.match(model.error, /not a valid ONNX model|missing|truncated/, "and says why");
      }
    });
  },
});

Deno.test({
  name: "model files - a single protobuf of 2 GiB or more is refused before any engine reads it",
  fn: async () => {
    await withDir(async (dir) => {
      // Sparse: 2.5 GiB on paper, nothing on disk.
      const file = await Deno.open(`${dir}/huge.onnx`, { write: true, create: true });
      await file.truncate(2.5 * GiB);
      file.close();
      await using service = await serve(dir, { huge: "./huge.onnx" });
      const load = await post(service, "/api/v1/models/huge/load", { device: "cpu" });
      const infer = await post(service, "/api/v1/pipelines/huge/infer", {
        inputs: { input: { type: "float32", dims: [1, 1], data: [0] } },
      });
      for (const { status, json } of [load, infer]) {
        assert.equal(status, 422, JSON.stringify(json));
        assert.equal(json.error?.code, "model_too_large");
        assert.match(json.error!.message, /2\.50 GiB in one protobuf file/);
        assert.match(json.error!.message, /save_as_external_data=True/);
      }
    });
  },
});

Deno.test({
  name: "model files - the wasm fallback refuses a model over 1.5 GiB, naming the native engine",
  fn: async () => {
    await withDir(async (dir) => {
      await writeSyntheticModel(`${dir}/big.onnx`, MiB);
      await Deno.truncate(`${dir}/big.onnx.data`, 1.6 * GiB); // sparse: the limit reads sizes
      await using service = await serve(dir, { big: "./big.onnx" }, { cpuEngine: "wasm" });
      const { status, json } = await post(service, "/api/v1/models/big/load", { device: "cpu" });
      assert.equal(status, 422, JSON.stringify(json));
      assert.equal(json.error?.code, "model_too_large");
      assert.match(
        json.error!.message,
        /1\.60 GiB: the wasm CPU engine holds models up to 1\.50 GiB/,
      );
      assert.match(json.error!.message, /HEADROOM_CPU_ENGINE=auto or native/);
      const check = await post(service, "/api/v1/hardware/vram/check", { pipelines: ["big"] });
      assert.equal(check.status, 200);
    });
  },
});

Deno.test({
  name: "model files - estimates count the external data, not just the graph file",
  fn: async () => {
    await withDir(async (dir) => {
      const info = await writeSyntheticModel(`${dir}/m.onnx`, 8 * MiB);
      await using service = await serve(dir, { m: "./m.onnx" }, {
        gpu: "software",
        vramBudget: { kind: "bytes", bytes: 4 * GiB },
      });
      const response = await service.app.request("/api/v1/hardware/vram/check", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ pipelines: ["m"] }),
      });
      const fit = await response.json();
      if (response.status !== 200) throw new Error(JSON.stringify(fit));
      assert.ok(
        fit.neededBytes >= info.fileBytes,
        `needs ${fit.neededBytes} bytes for ${info.fileBytes} bytes of files`,
      );
    });
  },
});

Deno.test("model files - a model the disk cannot hold is refused before writing", async () => {
  await withDir(async (dir) => {
    await assert.rejects(
      () => writeSyntheticModel(`${dir}/vast.onnx`, 2 ** 50),
      (error: Error) => {
        assert.ok(error instanceof DiskSpaceError);
        assert.match(error.message, /Not enough disk space for .*vast\.onnx: the model needs/);
        return true;
      },
    );
    assert.deepEqual([...Deno.readDirSync(dir)], [], "nothing written");
  });
});
