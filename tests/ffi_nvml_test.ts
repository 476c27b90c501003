// Tests ffi/nvml.ts against the driver test double (tests/fake_gpu.c), through the same
// openNvml code path as the real driver. Each test loads a private copy of the double
// (isolate: true), since `deno test --parallel` runs test files in one process.
import assert from "node:assert/strict";
import { LibraryNotFoundError, openLibrary } from "../ffi/_loader.ts";
import {
  isGpuLost,
  type Nvml,
  NVML_ERROR,
  NVML_LIBRARY_ENV,
  NVML_MEMORY,
  NVML_MEMORY_V2,
  NVML_MEMORY_V2_VERSION,
  NVML_PROCESS_INFO,
  NVML_PROCESS_INFO_V1,
  NVML_UTILIZATION,
  NvmlError,
  openNvml,
} from "../ffi/nvml.ts";
import {
  FAKE_GPU_NOV2_PATH,
  FAKE_GPU_PATH,
  FAKE_GPU_PROCS_V1_PATH,
  FakeGpu,
  GiB,
  NOT_AVAILABLE,
} from "./fake_gpu.ts";
import { NvmlSource } from "../core/monitor/nvml_source.ts";
import { catchError } from "./_assert.ts";
import { need } from "./_requires.ts";

/** A private double and an NVML session opened on it, closed together. */
function open(path = FAKE_GPU_PATH): { gpu: FakeGpu; nvml: Nvml } & Disposable {
  const gpu = new FakeGpu({ path, isolate: true });
  try {
    const nvml = openNvml(gpu.path);
    return {
      gpu,
      nvml,
      [Symbol.dispose]() {
        nvml.close();
        gpu.close();
      },
    };
  } catch (err) {
    gpu.close();
    throw err;
  }
}

const LAYOUT_SOURCE = new URL("./nvml_layout.c", import.meta.url).pathname;

/** Compiles and runs tests/nvml_layout.c: the C compiler's sizes and offsets of nvml.h's structs. */
async function layoutsFromC(): Promise<Record<string, unknown>> {
  const cc = Deno.env.get("CC") || "cc";
  const dir = await Deno.makeTempDir({ prefix: "headroom-nvml-layout-" });
  try {
    const exe = `${dir}/nvml_layout`;
    const built = await new Deno.Command(cc, {
      args: ["-Wall", "-Wextra", "-Werror", "-o", exe, LAYOUT_SOURCE],
      stderr: "piped",
    }).output();
    assert.ok(built.success, `${cc} ${LAYOUT_SOURCE}: ${new TextDecoder().decode(built.stderr)}`);
    const ran = await new Deno.Command(exe, { stdout: "piped" }).output();
    assert.ok(ran.success, `${exe} exited ${ran.code}`);
    return JSON.parse(new TextDecoder().decode(ran.stdout));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const hasCc = need(
  await new Deno.Command(Deno.env.get("CC") || "cc", { args: ["--version"], stdout: "null" })
    .output().then((o) => o.success, () => false),
  "a C compiler (cc, or CC) for the NVML layout check",
  "apt-get install -y gcc libc6-dev",
);

Deno.test({
  name: "NVML struct layouts - sizes and offsets are the C compiler's for nvml.h's structs",
  ignore: !hasCc,
}, async () => {
  const c = await layoutsFromC();
  assert.deepEqual(NVML_MEMORY, c.nvmlMemory_t);
  assert.deepEqual(NVML_MEMORY_V2, c.nvmlMemory_v2_t);
  assert.equal(NVML_MEMORY_V2_VERSION, c.nvmlMemory_v2);
  assert.deepEqual(NVML_UTILIZATION, c.nvmlUtilization_t);
  assert.deepEqual(NVML_PROCESS_INFO, c.nvmlProcessInfo_t);
  assert.deepEqual(NVML_PROCESS_INFO_V1, c.nvmlProcessInfo_v1_t);
});

Deno.test("openNvml - reads driver version, device count, names and UUIDs", () => {
  using s = open();
  s.gpu.setDriverVersion("999.12.34");
  s.gpu.setDeviceCount(3);
  s.gpu.setName(2, "NVIDIA H100 80GB HBM3");
  s.gpu.setUuid(2, "GPU-5e3b0c7a-1111-2222-3333-444455556666");
  assert.equal(s.nvml.driverVersion(), "999.12.34");
  assert.equal(s.nvml.deviceCount(), 3);
  assert.equal(s.nvml.device(0).name(), "Fake GPU 0");
  assert.equal(s.nvml.device(1).uuid(), "GPU-00000000-0000-0000-0000-000000000001");
  assert.equal(s.nvml.device(2).name(), "NVIDIA H100 80GB HBM3");
  assert.equal(s.nvml.device(2).uuid(), "GPU-5e3b0c7a-1111-2222-3333-444455556666");
  assert.equal(s.nvml.device(2).index, 2);
  assert.equal(s.nvml.path, s.gpu.path);
  assert.equal(s.gpu.callCount("nvmlInit_v2"), 1);
});

Deno.test("NvmlDevice.memory - v2 round-trips total, free, used and reserved", () => {
  using s = open();
  assert.equal(s.nvml.hasMemoryInfoV2, true);
  const total = 80 * GiB + 4096; // past 2^32, to catch a u32 read
  s.gpu.setTotal(0, total);
  s.gpu.setReserved(0, 512 * 1024 * 1024 + 7);
  s.gpu.setOtherUsed(0, 5 * GiB + 3);
  s.gpu.addProcess(0, 4242, 2 * GiB);
  assert.deepEqual(s.nvml.device(0).memory(), {
    totalBytes: total,
    reservedBytes: 512 * 1024 * 1024 + 7,
    usedBytes: 7 * GiB + 3,
    freeBytes: total - (512 * 1024 * 1024 + 7) - (7 * GiB + 3),
  });
  assert.equal(s.gpu.callCount("nvmlDeviceGetMemoryInfo_v2"), 1);
  assert.equal(s.gpu.callCount("nvmlDeviceGetMemoryInfo"), 0);
});

Deno.test("NvmlDevice.memory - falls back to v1 when the driver lacks v2", () => {
  using s = open(FAKE_GPU_NOV2_PATH);
  assert.equal(s.nvml.hasMemoryInfoV2, false);
  s.gpu.setTotal(0, 24 * GiB);
  s.gpu.setReserved(0, GiB);
  s.gpu.setOtherUsed(0, 3 * GiB);
  // v1 has no reserved field: its used includes the reserved memory.
  assert.deepEqual(s.nvml.device(0).memory(), {
    totalBytes: 24 * GiB,
    freeBytes: 20 * GiB,
    usedBytes: 4 * GiB,
    reservedBytes: null,
  });
  assert.equal(s.gpu.callCount("nvmlDeviceGetMemoryInfo"), 1);
});

Deno.test("NvmlDevice.memory - falls back to v1 when v2 answers NOT_SUPPORTED", () => {
  using s = open();
  s.gpu.setTotal(0, 16 * GiB);
  s.gpu.setOtherUsed(0, GiB);
  s.gpu.failNext("nvmlDeviceGetMemoryInfo_v2", NVML_ERROR.NOT_SUPPORTED);
  const device = s.nvml.device(0);
  assert.deepEqual(device.memory(), {
    totalBytes: 16 * GiB,
    freeBytes: 15 * GiB,
    usedBytes: GiB,
    reservedBytes: null,
  });
  device.memory();
  assert.equal(s.gpu.callCount("nvmlDeviceGetMemoryInfo_v2"), 1, "v2 not retried");
  assert.equal(s.gpu.callCount("nvmlDeviceGetMemoryInfo"), 2);
});

Deno.test("NvmlDevice - utilization and temperature round-trip", () => {
  using s = open();
  s.gpu.setDeviceCount(2);
  s.gpu.setUtilization(1, 87, 42);
  s.gpu.setTemperature(1, 71);
  const device = s.nvml.device(1);
  assert.deepEqual(device.utilization(), { gpuPercent: 87, memoryPercent: 42 });
  assert.equal(device.temperatureC(), 71);
  assert.deepEqual(s.nvml.device(0).utilization(), { gpuPercent: 0, memoryPercent: 0 });
});

Deno.test("NvmlDevice.computeProcesses - every field round-trips", () => {
  using s = open();
  s.gpu.addProcess(0, 1001, 3 * GiB + 5);
  s.gpu.addProcess(0, 1002, NOT_AVAILABLE);
  s.gpu.addProcess(0, 1003, 1234, 1, 2);
  assert.deepEqual(s.nvml.device(0).computeProcesses(), [
    { pid: 1001, usedBytes: 3 * GiB + 5, gpuInstanceId: 0xFFFFFFFF, computeInstanceId: 0xFFFFFFFF },
    { pid: 1002, usedBytes: null, gpuInstanceId: 0xFFFFFFFF, computeInstanceId: 0xFFFFFFFF },
    { pid: 1003, usedBytes: 1234, gpuInstanceId: 1, computeInstanceId: 2 },
  ]);
  s.gpu.clearProcesses(0);
  assert.deepEqual(s.nvml.device(0).computeProcesses(), []);
});

Deno.test("NvmlDevice.computeProcesses - grows the buffer when there are more processes", () => {
  using s = open();
  for (let i = 0; i < 100; i++) s.gpu.addProcess(0, 5000 + i, (i + 1) * 1024);
  const device = s.nvml.device(0);
  const list = device.computeProcesses();
  assert.equal(list.length, 100);
  assert.deepEqual(list[99], {
    pid: 5099,
    usedBytes: 100 * 1024,
    gpuInstanceId: 0xFFFFFFFF,
    computeInstanceId: 0xFFFFFFFF,
  });
  assert.equal(s.gpu.callCount("nvmlDeviceGetComputeRunningProcesses_v3"), 2);
  assert.equal(device.computeProcesses().length, 100);
  assert.equal(s.gpu.callCount("nvmlDeviceGetComputeRunningProcesses_v3"), 3, "buffer kept");
});

Deno.test("NvmlDevice.computeProcesses - gives up after a bounded number of retries", () => {
  using s = open();
  s.gpu.failTimes("nvmlDeviceGetComputeRunningProcesses_v3", NVML_ERROR.INSUFFICIENT_SIZE, 100);
  const err = catchError(() => s.nvml.device(0).computeProcesses(), NvmlError);
  assert.ok(err instanceof NvmlError);
  assert.equal(err.nvmlName, "NVML_ERROR_INSUFFICIENT_SIZE");
  assert.equal(s.gpu.callCount("nvmlDeviceGetComputeRunningProcesses_v3"), 5);
});

const NO_MIG = 0xFFFFFFFF;

Deno.test("NvmlDevice.graphicsProcesses - reads the graphics list, apart from the compute one", () => {
  using s = open();
  s.gpu.addListedProcess(0, 2001, 3 * GiB, ["graphics"]);
  s.gpu.addListedProcess(0, 2002, GiB, ["compute"]);
  const device = s.nvml.device(0);
  assert.deepEqual(device.graphicsProcesses(), [
    { pid: 2001, usedBytes: 3 * GiB, gpuInstanceId: NO_MIG, computeInstanceId: NO_MIG },
  ]);
  assert.deepEqual(device.computeProcesses().map((p) => p.pid), [2002]);
  assert.equal(s.gpu.callCount("nvmlDeviceGetGraphicsRunningProcesses_v3"), 1);
});

Deno.test("NvmlDevice.processes - merges both lists by pid; a C+G process counts once", () => {
  using s = open();
  s.gpu.addListedProcess(0, 3001, 2 * GiB, ["compute"]);
  s.gpu.addListedProcess(0, 3002, 5 * GiB, ["graphics"]);
  s.gpu.addListedProcess(0, 3003, 7 * GiB, ["compute", "graphics"]);
  const { processes, unavailable } = s.nvml.device(0).processes();
  assert.deepEqual(unavailable, []);
  assert.deepEqual(processes.map((p) => [p.pid, p.usedBytes, p.lists]), [
    [3001, 2 * GiB, ["compute"]],
    [3003, 7 * GiB, ["compute", "graphics"]],
    [3002, 5 * GiB, ["graphics"]],
  ]);
  // The double's device memory counts the C+G process once, as the driver does.
  assert.equal(s.nvml.device(0).memory().usedBytes, 14 * GiB);
});

Deno.test("NvmlDevice.processes - an unreadable graphics list is reported, the compute one kept", () => {
  using s = open();
  s.gpu.addListedProcess(0, 3101, GiB, ["compute"]);
  s.gpu.failNext("nvmlDeviceGetGraphicsRunningProcesses_v3", NVML_ERROR.NOT_SUPPORTED);
  const { processes, unavailable } = s.nvml.device(0).processes();
  assert.deepEqual(processes.map((p) => p.pid), [3101]);
  assert.deepEqual(unavailable.map((u) => [u.list, u.error.nvmlName]), [
    ["graphics", "NVML_ERROR_NOT_SUPPORTED"],
  ]);
});

Deno.test("NvmlDevice.processes - a driver with only the unversioned symbols reads their 16-byte structs", () => {
  using s = open(FAKE_GPU_PROCS_V1_PATH);
  s.gpu.addListedProcess(0, 3201, 3 * GiB + 1, ["compute"]);
  s.gpu.addListedProcess(0, 3202, 4 * GiB + 2, ["graphics"]);
  s.gpu.addListedProcess(0, 3203, 5 * GiB + 3, ["compute"]);
  const device = s.nvml.device(0);
  assert.deepEqual(device.computeProcesses(), [
    { pid: 3201, usedBytes: 3 * GiB + 1, gpuInstanceId: NO_MIG, computeInstanceId: NO_MIG },
    { pid: 3203, usedBytes: 5 * GiB + 3, gpuInstanceId: NO_MIG, computeInstanceId: NO_MIG },
  ]);
  assert.deepEqual(device.processes().processes.map((p) => [p.pid, p.lists]), [
    [3201, ["compute"]],
    [3203, ["compute"]],
    [3202, ["graphics"]],
  ]);
  assert.equal(s.gpu.callCount("nvmlDeviceGetComputeRunningProcesses"), 2);
});

Deno.test("NvmlSource - this process's WebGPU (graphics list) memory is its reserved memory", () => {
  using s = open();
  s.gpu.setTotal(0, 80 * GiB);
  s.gpu.addListedProcess(0, 999_999, GiB, ["compute"]); // another tenant
  s.gpu.setGraphicsProcess(0, Deno.pid, 6 * GiB); // Headroom's sessions, through Vulkan
  const source = new NvmlSource(s.nvml);
  const [graphics] = source.read();
  assert.ok(graphics.ok, JSON.stringify(graphics));
  assert.equal(graphics.reading.reservedBytes, 6 * GiB);
  assert.deepEqual(graphics.reading.reservedFrom, ["graphics"]);
  assert.equal(graphics.reading.reservedUnknown, undefined);
  // A CUDA allocation of the same process adds it to the compute list: one C+G entry.
  s.gpu.addListedProcess(0, Deno.pid, 6 * GiB, ["compute"]);
  const [both] = source.read();
  assert.ok(both.ok);
  assert.equal(both.reading.reservedBytes, 6 * GiB);
  assert.deepEqual(both.reading.reservedFrom, ["compute", "graphics"]);
  s.gpu.clearProcesses(0);
  const [gone] = source.read();
  assert.ok(gone.ok);
  assert.equal(gone.reading.reservedBytes, 0);
  assert.deepEqual(gone.reading.reservedFrom, []);
});

Deno.test("NvmlError - every call maps failure codes to name and NVML's text", () => {
  using s = open();
  const device = s.nvml.device(0);
  const calls: [string, () => unknown][] = [
    ["nvmlSystemGetDriverVersion", () => s.nvml.driverVersion()],
    ["nvmlDeviceGetCount_v2", () => s.nvml.deviceCount()],
    ["nvmlDeviceGetHandleByIndex_v2", () => s.nvml.device(0)],
    ["nvmlDeviceGetName", () => device.name()],
    ["nvmlDeviceGetUUID", () => device.uuid()],
    ["nvmlDeviceGetMemoryInfo_v2", () => device.memory()],
    ["nvmlDeviceGetUtilizationRates", () => device.utilization()],
    ["nvmlDeviceGetTemperature", () => device.temperatureC()],
    ["nvmlDeviceGetComputeRunningProcesses_v3", () => device.computeProcesses()],
  ];
  const codes: [number, string, string][] = [
    [NVML_ERROR.NO_PERMISSION, "NVML_ERROR_NO_PERMISSION", "Insufficient Permissions"],
    [NVML_ERROR.TIMEOUT, "NVML_ERROR_TIMEOUT", "Timeout"],
    [NVML_ERROR.UNKNOWN, "NVML_ERROR_UNKNOWN", "Unknown Error"],
  ];
  for (const [fn, call] of calls) {
    for (const [code, name, text] of codes) {
      s.gpu.failNext(fn, code);
      try {
        call();
        assert.fail(`${fn} did not throw for ${name}`);
      } catch (err) {
        assert.ok(err instanceof NvmlError, `${fn}: ${err}`);
        assert.equal(err.code, code);
        assert.equal(err.nvmlName, name);
        assert.equal(err.fn, fn);
        assert.equal(err.description, text);
        assert.equal(err.message, `${fn} failed: ${name} (${code}): ${text}`);
      }
      call(); // the failure was for one call only
    }
  }
});

Deno.test("openNvml - an nvmlInit_v2 failure becomes NvmlError", () => {
  using gpu = new FakeGpu({ isolate: true });
  gpu.failNext("nvmlInit_v2", NVML_ERROR.DRIVER_NOT_LOADED);
  const err = catchError(() => openNvml(gpu.path), NvmlError);
  assert.ok(err instanceof NvmlError);
  assert.equal(err.nvmlName, "NVML_ERROR_DRIVER_NOT_LOADED");
  assert.equal(err.description, "Driver Not Loaded");
  assert.equal(gpu.callCount("nvmlShutdown"), 0);
  openNvml(gpu.path).close(); // the next open works
});

Deno.test("NvmlDevice - a lost GPU throws NvmlError, then recovers", () => {
  using s = open();
  s.gpu.setTotal(0, 8 * GiB);
  const device = s.nvml.device(0);
  assert.equal(device.memory().totalBytes, 8 * GiB);
  s.gpu.setLost(0, true);
  for (const call of [() => device.memory(), () => device.name(), () => s.nvml.device(0)]) {
    const err = catchError(call, NvmlError);
    assert.ok(isGpuLost(err), String(err));
    assert.equal((err as NvmlError).nvmlName, "NVML_ERROR_GPU_IS_LOST");
  }
  assert.equal(s.nvml.deviceCount(), 1, "a lost GPU still counts");
  s.gpu.setLost(0, false);
  const handles = s.gpu.callCount("nvmlDeviceGetHandleByIndex_v2");
  assert.equal(device.memory().totalBytes, 8 * GiB);
  assert.equal(s.gpu.callCount("nvmlDeviceGetHandleByIndex_v2"), handles + 1, "handle re-fetched");
});

Deno.test("isGpuLost - true for GPU_IS_LOST and RESET_REQUIRED only", () => {
  assert.equal(isGpuLost(new NvmlError("f", NVML_ERROR.GPU_IS_LOST, "")), true);
  assert.equal(isGpuLost(new NvmlError("f", NVML_ERROR.RESET_REQUIRED, "")), true);
  assert.equal(isGpuLost(new NvmlError("f", NVML_ERROR.UNKNOWN, "")), false);
  assert.equal(isGpuLost(new Error("GPU is lost")), false);
});

Deno.test("Nvml.device - an index past the count throws INVALID_ARGUMENT", () => {
  using s = open();
  const err = catchError(() => s.nvml.device(1), NvmlError);
  assert.equal((err as NvmlError).nvmlName, "NVML_ERROR_INVALID_ARGUMENT");
});

Deno.test("Nvml.close - safe twice; later calls throw NvmlError, never crash", () => {
  using gpu = new FakeGpu({ isolate: true });
  const nvml = openNvml(gpu.path);
  const device = nvml.device(0);
  nvml.close();
  nvml.close();
  assert.equal(gpu.callCount("nvmlShutdown"), 1);
  for (const call of [() => device.memory(), () => nvml.deviceCount(), () => nvml.device(0)]) {
    const err = catchError(call, NvmlError);
    assert.equal((err as NvmlError).nvmlName, "NVML_ERROR_UNINITIALIZED");
  }
});

Deno.test("openNvml - a missing library throws LibraryNotFoundError with what was tried", () => {
  const err = catchError(() => openNvml("/nonexistent/libnvidia-ml.so.1"), LibraryNotFoundError);
  assert.ok(err instanceof LibraryNotFoundError);
  assert.equal(err.tried.length, 1);
  assert.match(err.tried[0], /^path=\/nonexistent\/libnvidia-ml\.so\.1 \(/);
  assert.match(err.message, /^NVML library not found: tried path=\/nonexistent/);
  assert.match(
    err.message,
    /Install the NVIDIA driver or set HEADROOM_NVML_LIBRARY to its path\.$/,
  );
});

Deno.test("openLibrary - lists the env var and every soname when none loads", () => {
  const err = catchError(() =>
    openLibrary("NVML", {
      envVar: "HEADROOM_TEST_NEVER_SET",
      sonames: ["libnope-ml.so.1", "libnope-ml.so"],
      search: () => ["/nonexistent/libnope-ml.so.2"],
      install: "Install the NVIDIA driver",
    }, { nvmlInit_v2: { parameters: [], result: "i32" } }), LibraryNotFoundError);
  assert.ok(err instanceof LibraryNotFoundError);
  assert.deepEqual(err.tried, [
    "HEADROOM_TEST_NEVER_SET (unset)",
    "libnope-ml.so.1",
    "libnope-ml.so",
    "/nonexistent/libnope-ml.so.2",
  ]);
  assert.equal(
    err.message,
    "NVML library not found: tried HEADROOM_TEST_NEVER_SET (unset), libnope-ml.so.1, " +
      "libnope-ml.so, /nonexistent/libnope-ml.so.2. Install the NVIDIA driver or set " +
      "HEADROOM_TEST_NEVER_SET to its path.",
  );
});

Deno.test("openNvml - without a driver the error names the sonames it tried", () => {
  if (Deno.env.get(NVML_LIBRARY_ENV) !== undefined) {
    console.log(`skipped: ${NVML_LIBRARY_ENV} is set`);
    return;
  }
  let nvml: Nvml;
  try {
    nvml = openNvml();
  } catch (err) {
    assert.ok(err instanceof LibraryNotFoundError || err instanceof NvmlError, String(err));
    if (err instanceof LibraryNotFoundError) {
      assert.equal(
        err.message,
        "NVML library not found: tried HEADROOM_NVML_LIBRARY (unset), libnvidia-ml.so.1, " +
          "libnvidia-ml.so. Install the NVIDIA driver or set HEADROOM_NVML_LIBRARY to its path.",
      );
    }
    return;
  }
  // A real driver is here: it must answer like the double does.
  try {
    assert.ok(nvml.deviceCount() >= 0);
    assert.match(nvml.driverVersion(), /^\d+\.\d+/);
  } finally {
    nvml.close();
  }
});

Deno.test("openNvml - HEADROOM_NVML_LIBRARY names the library", async () => {
  using gpu = new FakeGpu({ isolate: true });
  const code = `
    import { openNvml } from ${JSON.stringify(new URL("../ffi/nvml.ts", import.meta.url).href)};
    const nvml = openNvml();
    console.log(JSON.stringify({ path: nvml.path, name: nvml.device(0).name() }));
    nvml.close();
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-config", code],
    env: { [NVML_LIBRARY_ENV]: gpu.path },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, stderr);
  assert.deepEqual(JSON.parse(new TextDecoder().decode(out.stdout)), {
    path: gpu.path,
    name: "Fake GPU 0",
  });
});
