// Tests ffi/cudart.ts against the driver test double (tests/fake_gpu.c) and against the
// machine's real libcudart. Each test loads a private copy of the double (isolate: true),
// since `deno test --parallel` runs test files in one process.
import assert from "node:assert/strict";
import { LibraryNotFoundError } from "../ffi/_loader.ts";
import {
  CUDA_ERROR,
  CudaError,
  type Cudart,
  CUDART_LIBRARY_ENV,
  CUDART_SONAMES,
  findToolkitCudart,
  isNoDevice,
  isNoDriver,
  openCudart,
} from "../ffi/cudart.ts";
import { openNvml } from "../ffi/nvml.ts";
import { FAKE_GPU_STATE_ENV, FakeGpu, GiB } from "./fake_gpu.ts";
import { catchError } from "./_assert.ts";

/** A private double and a CUDA runtime opened on it, closed together. */
function open(): { gpu: FakeGpu; cuda: Cudart } & Disposable {
  const gpu = new FakeGpu({ isolate: true });
  const cuda = openCudart(gpu.path);
  return {
    gpu,
    cuda,
    [Symbol.dispose]() {
      cuda.close();
      gpu.close();
    },
  };
}

Deno.test("Cudart - versions, device count and memGetInfo round-trip", () => {
  using s = open();
  s.gpu.setCudaVersions(12080, 13010);
  s.gpu.setDeviceCount(2);
  s.gpu.setTotal(0, 8 * GiB);
  s.gpu.setTotal(1, 80 * GiB + 1);
  s.gpu.setOtherUsed(1, 3 * GiB);
  assert.equal(s.cuda.path, s.gpu.path);
  assert.equal(s.cuda.runtimeVersion(), 12080);
  assert.equal(s.cuda.driverVersion(), 13010);
  assert.equal(s.cuda.deviceCount(), 2);
  assert.deepEqual(s.cuda.memGetInfo(), { freeBytes: 8 * GiB, totalBytes: 8 * GiB });
  s.cuda.setDevice(1);
  assert.deepEqual(s.cuda.memGetInfo(), { freeBytes: 77 * GiB + 1, totalBytes: 80 * GiB + 1 });
});

Deno.test("Cudart.malloc - raises used, shows this process in NVML, free restores", () => {
  using s = open();
  s.gpu.setTotal(0, 8 * GiB);
  s.gpu.setOtherUsed(0, GiB);
  const nvml = openNvml(s.gpu.path);
  try {
    const device = nvml.device(0);
    const ptr = s.cuda.malloc(2 * GiB);
    assert.notEqual(ptr, null);
    assert.equal(device.memory().usedBytes, 3 * GiB);
    assert.deepEqual(s.cuda.memGetInfo(), { freeBytes: 5 * GiB, totalBytes: 8 * GiB });
    assert.deepEqual(device.computeProcesses(), [
      {
        pid: Deno.pid,
        usedBytes: 2 * GiB,
        gpuInstanceId: 0xFFFFFFFF,
        computeInstanceId: 0xFFFFFFFF,
      },
    ]);
    s.cuda.free(ptr);
    assert.equal(device.memory().usedBytes, GiB);
    assert.deepEqual(device.computeProcesses(), []);
  } finally {
    nvml.close();
  }
});

Deno.test("Cudart.malloc - past the total throws cudaErrorMemoryAllocation, used unchanged", () => {
  using s = open();
  s.gpu.setTotal(0, 4 * GiB);
  const held = s.cuda.malloc(3 * GiB);
  const err = catchError(() => s.cuda.malloc(2 * GiB), CudaError);
  assert.equal(err.code, CUDA_ERROR.MemoryAllocation);
  assert.equal(err.cudaName, "cudaErrorMemoryAllocation");
  assert.equal(err.message, "cudaMalloc failed: cudaErrorMemoryAllocation (2): out of memory");
  assert.equal(isNoDriver(err), false);
  assert.equal(s.gpu.used(0), 3 * GiB);
  assert.equal(s.cuda.memGetInfo().freeBytes, GiB);
  s.cuda.free(held);
  assert.equal(s.gpu.used(0), 0);
});

Deno.test("Cudart.free - an unknown pointer throws cudaErrorInvalidValue; null is a no-op", () => {
  using s = open();
  const ptr = s.cuda.malloc(1024);
  s.cuda.free(ptr);
  const err = catchError(() => s.cuda.free(ptr), CudaError);
  assert.equal(err.cudaName, "cudaErrorInvalidValue");
  assert.equal(err.description, "invalid argument");
  s.cuda.free(null);
  assert.equal(s.cuda.malloc(0), null);
});

Deno.test("CudaError - no driver and no device read clearly", () => {
  using s = open();
  s.gpu.failNext("cudaGetDeviceCount", CUDA_ERROR.InsufficientDriver);
  const noDriver = catchError(() => s.cuda.deviceCount(), CudaError);
  assert.equal(isNoDriver(noDriver), true);
  assert.equal(noDriver.cudaName, "cudaErrorInsufficientDriver");
  assert.match(noDriver.message, /^No NVIDIA driver/);

  s.gpu.setDeviceCount(0);
  const noDevice = catchError(() => s.cuda.memGetInfo(), CudaError);
  assert.equal(noDevice.cudaName, "cudaErrorNoDevice");
  assert.equal(isNoDevice(noDevice), true);
  assert.equal(isNoDriver(noDevice), true, "CUDA unusable either way");
  assert.match(noDevice.message, /^No CUDA device: cudaMemGetInfo failed/);

  s.gpu.setDeviceCount(1);
  const badDevice = catchError(() => s.cuda.setDevice(3), CudaError);
  assert.equal(badDevice.cudaName, "cudaErrorInvalidDevice");
  assert.equal(isNoDriver(badDevice), false);
});

Deno.test("CudaError - every call maps a failure code to its name and text", () => {
  using s = open();
  const calls: [string, () => unknown][] = [
    ["cudaRuntimeGetVersion", () => s.cuda.runtimeVersion()],
    ["cudaDriverGetVersion", () => s.cuda.driverVersion()],
    ["cudaGetDeviceCount", () => s.cuda.deviceCount()],
    ["cudaSetDevice", () => s.cuda.setDevice(0)],
    ["cudaMemGetInfo", () => s.cuda.memGetInfo()],
    ["cudaMalloc", () => s.cuda.free(s.cuda.malloc(16))],
    ["cudaFree", () => s.cuda.free(s.cuda.malloc(16))],
  ];
  for (const [fn, call] of calls) {
    s.gpu.failNext(fn, 999);
    const err = catchError(call, CudaError);
    assert.equal(err.fn, fn);
    assert.equal(err.code, 999);
    assert.equal(err.cudaName, "cudaErrorUnknown");
    assert.equal(err.message, `${fn} failed: cudaErrorUnknown (999): unknown error`);
    call();
  }
});

Deno.test("Cudart.close - safe twice; later calls throw CudaError, never crash", () => {
  using gpu = new FakeGpu({ isolate: true });
  const cuda = openCudart(gpu.path);
  cuda.close();
  cuda.close();
  const err = catchError(() => cuda.memGetInfo(), CudaError);
  assert.equal(err.cudaName, "cudaErrorCudartUnloading");
});

Deno.test("openCudart - a missing library throws LibraryNotFoundError with what was tried", () => {
  const err = catchError(() => openCudart("/nonexistent/libcudart.so.13"), LibraryNotFoundError);
  assert.equal(err.tried.length, 1);
  assert.match(err.message, /^CUDA runtime library not found: tried path=\/nonexistent/);
  assert.match(err.message, /set HEADROOM_CUDART_LIBRARY to its path\.$/);
});

/** The machine's real libcudart, or null: soname first, then /usr/local/cuda*. */
function realCudart(): Cudart | null {
  for (const candidate of [...CUDART_SONAMES, ...findToolkitCudart()]) {
    try {
      return openCudart(candidate);
    } catch {
      // try the next one
    }
  }
  return null;
}

Deno.test("openCudart - the real libcudart without a driver reads as no NVIDIA driver", () => {
  const cuda = realCudart();
  if (cuda === null) {
    console.log("skipped: no libcudart found (no CUDA toolkit on this machine)");
    return;
  }
  try {
    assert.ok(cuda.runtimeVersion() >= 12000, "runtime version works without a driver");
    let count: number;
    try {
      count = cuda.deviceCount();
    } catch (err) {
      assert.ok(isNoDriver(err), String(err));
      assert.match((err as Error).message, /^No (NVIDIA driver|CUDA device)/);
      if ((err as CudaError).code === CUDA_ERROR.InsufficientDriver) {
        assert.equal((err as CudaError).cudaName, "cudaErrorInsufficientDriver");
        assert.equal(cuda.driverVersion(), 0, "no driver reports version 0");
      }
      return;
    }
    // A driver is here (a GPU machine): the real answers must look sane.
    assert.ok(count > 0);
    const { freeBytes, totalBytes } = cuda.memGetInfo();
    assert.ok(totalBytes > 0 && freeBytes <= totalBytes);
  } finally {
    cuda.close();
  }
});

Deno.test("fake GPU state - another process's cudaMalloc shows in this one", async () => {
  const statePath = await Deno.makeTempFile({ prefix: "fake_gpu_state_" });
  using gpu = new FakeGpu({ isolate: true, statePath });
  const nvml = openNvml(gpu.path);
  try {
    gpu.setTotal(0, 16 * GiB);
    gpu.setOtherUsed(0, GiB);
    const device = nvml.device(0);
    assert.equal(device.memory().usedBytes, GiB);

    // The child allocates 3 GiB, says so, and exits without freeing when stdin closes.
    const code = `
      import { openCudart } from ${
      JSON.stringify(new URL("../ffi/cudart.ts", import.meta.url).href)
    };
      const cuda = openCudart();
      cuda.malloc(3 * 1024 ** 3);
      console.log("allocated");
      for await (const _ of Deno.stdin.readable) { /* wait for the parent */ }
    `;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["eval", "--no-config", code],
      env: { [CUDART_LIBRARY_ENV]: gpu.path, [FAKE_GPU_STATE_ENV]: statePath },
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    const first = await reader.read();
    assert.equal(first.value?.trim(), "allocated");

    assert.equal(device.memory().usedBytes, 4 * GiB);
    const processes = device.computeProcesses();
    assert.deepEqual(processes.map((p) => [p.pid, p.usedBytes]), [[child.pid, 3 * GiB]]);

    await child.stdin.close();
    await reader.cancel();
    assert.equal((await child.status).code, 0);
    // Like the driver, the double drops a dead process's memory.
    assert.equal(device.memory().usedBytes, GiB);
  } finally {
    nvml.close();
    await Deno.remove(statePath);
  }
});
