/**
 * The device bundle rehearsed here, as the device machine will run it: `deno task
 * device-bundle` writes `.dist/device/`, which is copied into an empty folder and run
 * through its `run.sh` with no network and no npm cache (HOME elsewhere, an empty
 * DENO_DIR, the registry and proxies pointed at a closed loopback port), on the driver
 * double and the software WebGPU adapter, with small generated models. Every step of the
 * GPU report must have run and the report must be written, headed as a rehearsal.
 *
 * Mesa's shader cache is kept in tests/.build/mesa-cache between runs (it is not an npm
 * cache): the first run compiles PaddleOCR's shaders on the CPU and takes minutes; later
 * runs take about a minute on 2 cores.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { exists, need, requireFakeGpu, requireWebGpu } from "./_requires.ts";
import { FAKE_GPU_PATH } from "./fake_gpu.ts";
import { BUNDLE_FILES } from "../scripts/device_bundle.ts";
import type { GpuReport } from "../scripts/gpu_report/markdown.ts";

const ROOT = new URL("../", import.meta.url).pathname;
/**
 * The rehearsal's bundle: xz level 0 (seconds, where the default level takes minutes on 2
 * cores), so larger than `deno task device-bundle`'s; kept between runs, so that only
 * what changed is compressed again.
 */
const BUNDLE = join(ROOT, "tests/.build/device-bundle");
const FAST_BUNDLE_MIB = 200;

async function hasTool(name: string): Promise<boolean> {
  return await new Deno.Command("sh", { args: ["-c", `command -v ${name}`], stdout: "null" })
    .output().then((o) => o.success, () => false);
}

const ready = requireFakeGpu() && await requireWebGpu() &&
  need(
    await hasTool("xz") && await hasTool("tar") && await hasTool("git"),
    "xz, tar and git for the device bundle",
    "apt-get install -y xz-utils tar git",
  );

/** A loopback port nothing listens on: the registry and proxies the rehearsal points at. */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

async function bundleBytes(): Promise<number> {
  let total = 0;
  for (const name of BUNDLE_FILES) total += (await Deno.stat(join(BUNDLE, name))).size;
  return total;
}

Deno.test({
  name: "device bundle - runs the GPU report from an empty folder with no registry, every step ran",
  ignore: !ready,
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const built = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "scripts/device_bundle.ts",
      "--out",
      BUNDLE,
      "--level",
      "0",
      "--max-mib",
      `${FAST_BUNDLE_MIB}`,
    ],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const log = new TextDecoder().decode(built.stdout) + new TextDecoder().decode(built.stderr);
  assert.ok(built.success, `device-bundle failed:\n${log}`);
  const bytes = await bundleBytes();
  assert.ok(bytes <= FAST_BUNDLE_MIB * 2 ** 20, `bundle ${bytes} B`);

  const tmp = await Deno.makeTempDir({ prefix: "headroom-rehearsal-" });
  try {
    const bundle = join(tmp, "bundle");
    await Deno.mkdir(bundle);
    for (const name of BUNDLE_FILES) {
      await Deno.copyFile(join(BUNDLE, name), join(bundle, name));
    }
    // The double is test machinery, not part of the bundle: a copy stands in for the driver.
    const driver = join(tmp, "libfakegpu.so");
    await Deno.copyFile(FAKE_GPU_PATH, driver);
    const home = join(tmp, "home");
    const out = join(tmp, "out");
    await Deno.mkdir(home);
    const dead = `http://127.0.0.1:${closedPort()}`;
    // Mesa's own shader cache of this user (MESA_SHADER_CACHE_DIR names the folder that holds
    // `mesa_shader_cache`), shared with the other webgpu tests: OCR det's shaders then compile
    // once per machine, not once more for the rehearsal (a cold compile is ~2 min on 2 cores).
    const mesaCache = Deno.env.get("MESA_SHADER_CACHE_DIR") ?? Deno.env.get("XDG_CACHE_HOME") ??
      join(Deno.env.get("HOME") ?? ROOT, ".cache");
    await Deno.mkdir(mesaCache, { recursive: true });
    const env: Record<string, string> = {
      PATH: "/usr/local/bin:/usr/bin:/bin",
      HOME: home,
      DENO_DIR: join(tmp, "deno-dir"),
      XDG_CACHE_HOME: join(home, ".cache"),
      NPM_CONFIG_REGISTRY: dead,
      npm_config_registry: dead,
      HTTP_PROXY: dead,
      HTTPS_PROXY: dead,
      ALL_PROXY: dead,
      NO_PROXY: "",
      HEADROOM_NVML_LIBRARY: driver,
      HEADROOM_CUDART_LIBRARY: driver,
      FAKE_GPU_STATE: join(tmp, "fake-gpu.state"),
      MESA_SHADER_CACHE_DIR: mesaCache,
    };
    if (exists("/usr/share/vulkan/icd.d/lvp_icd.x86_64.json")) env.DENO_WEBGPU_BACKEND = "vulkan";
    const run = await new Deno.Command("sh", {
      args: [
        join(bundle, "run.sh"),
        "--out",
        out,
        "--sizes",
        "4MiB",
        "--budget",
        "600",
        "--model-limit",
        "300",
      ],
      clearEnv: true,
      env,
      cwd: tmp,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const output = new TextDecoder().decode(run.stdout) + new TextDecoder().decode(run.stderr);
    assert.equal(run.code, 0, `run.sh failed:\n${output}`);
    assert.ok(
      !exists(join(home, ".npm")) && !exists(join(home, ".cache/deno")),
      "no npm cache made",
    );

    const report: GpuReport = JSON.parse(await Deno.readTextFile(join(out, "gpu.json")));
    const notRun = report.steps.filter((s) => s.status !== "ran");
    assert.deepEqual(
      notRun.map((s) => `${s.name}: ${s.status} (${s.reason})`),
      [],
      `every step ran:\n${output.slice(-4000)}`,
    );
    assert.deepEqual(
      report.steps.map((s) => s.name),
      [
        "adapter",
        "driver memory",
        "sample cost",
        "generate gen-4mib",
        "service",
        "process lists",
        "ocr det",
        "silero vad",
        "gen-4mib lifecycle",
        "pressure",
        "buffer cache",
      ],
    );
    assert.equal(report.card, false);
    assert.equal(report.onDouble, true);
    const step = (name: string) => report.steps.find((s) => s.name === name)!.figures;
    // This process's WebGPU memory is attributed to it, from the graphics list.
    const lists = step("process lists");
    assert.deepEqual(lists.reservedFrom, ["graphics"]);
    assert.equal(lists.reservedBytes, lists.trackedBytes);
    assert.ok((lists.trackedBytes as number) > 0);
    assert.ok((step("pressure").evictions as unknown[]).length >= 1, "the tenant caused evictions");
    assert.equal(
      (step("buffer cache").headroom as { afterReleaseBytes: number }).afterReleaseBytes,
      0,
    );
    const md = await Deno.readTextFile(join(out, "gpu.md"));
    assert.match(
      md,
      /^# Rehearsal on the driver double \(tests\/fake_gpu\.c\) and the software WebGPU adapter, not a card/,
    );
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
});
