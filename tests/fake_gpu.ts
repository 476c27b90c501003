/**
 * A typed handle on the driver test double's control functions (tests/fake_gpu.c).
 * Build the double first: `deno task build:fake-gpu`.
 *
 * The double's state lives in the loaded library, so a FakeGpu and an `openNvml` or
 * `openCudart` of the same path in one process share it; with `statePath` (or the env
 * var FAKE_GPU_STATE) processes share it through a file.
 *
 * @example
 * ```ts ignore
 * using gpu = new FakeGpu();
 * gpu.setTotal(0, 8 * GiB);
 * const nvml = openNvml(FAKE_GPU_PATH);
 * ```
 *
 * @module
 */

/** Absolute path of the built double: serves as both the NVML and the CUDA runtime library. */
export const FAKE_GPU_PATH = new URL(".build/libfakegpu.so", import.meta.url).pathname;

/** Absolute path of the variant without nvmlDeviceGetMemoryInfo_v2, for the v1 fallback. */
export const FAKE_GPU_NOV2_PATH = new URL(".build/libfakegpu_nov2.so", import.meta.url).pathname;

/** Absolute path of the variant whose process lists are only the unversioned (v1) symbols. */
export const FAKE_GPU_PROCS_V1_PATH =
  new URL(".build/libfakegpu_procs_v1.so", import.meta.url).pathname;

/** Env var that makes the double keep its state in a shared file (read on first use). */
export const FAKE_GPU_STATE_ENV = "FAKE_GPU_STATE";

/** One gibibyte, for readable test figures. */
export const GiB = 1024 ** 3;

/** NVML's "not available" value; pass it as a process's bytes to read back null. */
export const NOT_AVAILABLE = 0xFFFFFFFFFFFFFFFFn;

const symbols = {
  /** void fake_reset(void) */
  fake_reset: { parameters: [], result: "void" },
  /** int fake_attach_state(const char* path) */
  fake_attach_state: { parameters: ["buffer" /* const char* path */], result: "i32" },
  /** void fake_detach_state(void) */
  fake_detach_state: { parameters: [], result: "void" },
  /** void fake_set_device_count(unsigned int n) */
  fake_set_device_count: { parameters: ["u32"], result: "void" },
  /** void fake_set_total(unsigned int dev, unsigned long long bytes) */
  fake_set_total: { parameters: ["u32", "u64"], result: "void" },
  /** void fake_set_reserved(unsigned int dev, unsigned long long bytes) */
  fake_set_reserved: { parameters: ["u32", "u64"], result: "void" },
  /** void fake_set_other_used(unsigned int dev, unsigned long long bytes) */
  fake_set_other_used: { parameters: ["u32", "u64"], result: "void" },
  /** void fake_set_name(unsigned int dev, const char* name) */
  fake_set_name: { parameters: ["u32", "buffer"], result: "void" },
  /** void fake_set_uuid(unsigned int dev, const char* uuid) */
  fake_set_uuid: { parameters: ["u32", "buffer"], result: "void" },
  /** void fake_set_driver_version(const char* version) */
  fake_set_driver_version: { parameters: ["buffer"], result: "void" },
  /** void fake_set_cuda_versions(int runtime, int driver) */
  fake_set_cuda_versions: { parameters: ["i32", "i32"], result: "void" },
  /** void fake_set_utilization(unsigned int dev, unsigned int gpu, unsigned int mem) */
  fake_set_utilization: { parameters: ["u32", "u32", "u32"], result: "void" },
  /** void fake_set_temperature(unsigned int dev, unsigned int celsius) */
  fake_set_temperature: { parameters: ["u32", "u32"], result: "void" },
  /** void fake_set_lost(unsigned int dev, int lost) */
  fake_set_lost: { parameters: ["u32", "i32"], result: "void" },
  /** int fake_add_process(unsigned int dev, unsigned int pid, unsigned long long bytes) */
  fake_add_process: { parameters: ["u32", "u32", "u64"], result: "i32" },
  /** int fake_add_process_ex(unsigned int dev, unsigned int pid, unsigned long long bytes, unsigned int gi, unsigned int ci) */
  fake_add_process_ex: { parameters: ["u32", "u32", "u64", "u32", "u32"], result: "i32" },
  /** int fake_add_process_in(unsigned int dev, unsigned int pid, unsigned long long bytes, unsigned int gi, unsigned int ci, unsigned int lists) */
  fake_add_process_in: { parameters: ["u32", "u32", "u64", "u32", "u32", "u32"], result: "i32" },
  /** int fake_set_graphics_process(unsigned int dev, unsigned int pid, unsigned long long bytes) */
  fake_set_graphics_process: { parameters: ["u32", "u32", "u64"], result: "i32" },
  /** void fake_clear_processes(unsigned int dev) */
  fake_clear_processes: { parameters: ["u32"], result: "void" },
  /** void fake_fail_times(const char* fn, int code, int times) */
  fake_fail_times: { parameters: ["buffer", "i32", "i32"], result: "void" },
  /** unsigned long long fake_call_count(const char* fn) */
  fake_call_count: { parameters: ["buffer"], result: "u64" },
  /** unsigned long long fake_used(unsigned int dev) */
  fake_used: { parameters: ["u32"], result: "u64" },
  /** unsigned long long fake_allocated(unsigned int dev) */
  fake_allocated: { parameters: ["u32"], result: "u64" },
} as const satisfies Deno.ForeignLibraryInterface;

const encoder = new TextEncoder();
function cstr(s: string): Uint8Array<ArrayBuffer> {
  return encoder.encode(s + "\0");
}
function big(n: number | bigint): bigint {
  return typeof n === "bigint" ? n : BigInt(n);
}

/** Options for {@linkcode FakeGpu}. */
export interface FakeGpuOptions {
  /** The library to load; defaults to {@linkcode FAKE_GPU_PATH}. */
  path?: string;
  /** Keep the state in this file, shared with other processes that attach to it. */
  statePath?: string;
  /** Reset the double to its defaults on open (default true). */
  reset?: boolean;
  /**
   * Load a private copy of the library (removed on close), so its state is not shared
   * with other test files that `deno test --parallel` runs in the same process. Pass
   * {@linkcode FakeGpu.path} to openNvml/openCudart then.
   */
  isolate?: boolean;
}

/** Controls the driver test double: set figures, inject failures, count calls. */
export class FakeGpu {
  /** The library that was loaded. */
  readonly path: string;
  #lib: Deno.DynamicLibrary<typeof symbols>;
  #closed = false;
  #copy: string | undefined;

  /** Loads the double and (by default) resets it to one 8 GiB device with nothing used. */
  constructor(options: FakeGpuOptions = {}) {
    const source = options.path ?? FAKE_GPU_PATH;
    this.path = source;
    try {
      if (options.isolate) {
        this.#copy = Deno.makeTempFileSync({ prefix: "libfakegpu_", suffix: ".so" });
        Deno.copyFileSync(source, this.#copy);
        this.path = this.#copy;
      }
      this.#lib = Deno.dlopen(this.path, symbols);
    } catch (err) {
      if (this.#copy) Deno.removeSync(this.#copy);
      throw new Error(
        `Cannot load the fake GPU library ${source}: run \`deno task build:fake-gpu\` first`,
        { cause: err },
      );
    }
    if (options.statePath !== undefined) this.attachState(options.statePath);
    if (options.reset ?? true) this.reset();
  }

  /** Back to the defaults: 1 device, 8 GiB, nothing used, no processes, failures or counts. */
  reset(): void {
    this.#lib.symbols.fake_reset();
  }

  /** Keeps the state in a file shared with other processes (created if missing). */
  attachState(path: string): void {
    if (this.#lib.symbols.fake_attach_state(cstr(path)) !== 0) {
      throw new Error(`Cannot map the fake GPU state file ${path}`);
    }
  }

  /** Goes back to this process's private state. */
  detachState(): void {
    this.#lib.symbols.fake_detach_state();
  }

  /** How many devices NVML and CUDA report (0 to 8). */
  setDeviceCount(n: number): void {
    this.#lib.symbols.fake_set_device_count(n);
  }

  /** A device's total memory in bytes. */
  setTotal(dev: number, bytes: number | bigint): void {
    this.#lib.symbols.fake_set_total(dev, big(bytes));
  }

  /** Memory the driver reserves (NVML v2 `reserved`), in bytes. */
  setReserved(dev: number, bytes: number | bigint): void {
    this.#lib.symbols.fake_set_reserved(dev, big(bytes));
  }

  /** Memory used by other processes that do not show in the process list, in bytes. */
  setOtherUsed(dev: number, bytes: number | bigint): void {
    this.#lib.symbols.fake_set_other_used(dev, big(bytes));
  }

  /** A device's product name. */
  setName(dev: number, name: string): void {
    this.#lib.symbols.fake_set_name(dev, cstr(name));
  }

  /** A device's UUID. */
  setUuid(dev: number, uuid: string): void {
    this.#lib.symbols.fake_set_uuid(dev, cstr(uuid));
  }

  /** The NVML driver version string. */
  setDriverVersion(version: string): void {
    this.#lib.symbols.fake_set_driver_version(cstr(version));
  }

  /** What cudaRuntimeGetVersion and cudaDriverGetVersion report, e.g. 13000. */
  setCudaVersions(runtime: number, driver: number): void {
    this.#lib.symbols.fake_set_cuda_versions(runtime, driver);
  }

  /** GPU and memory utilization in percent. */
  setUtilization(dev: number, gpuPercent: number, memoryPercent: number): void {
    this.#lib.symbols.fake_set_utilization(dev, gpuPercent, memoryPercent);
  }

  /** The GPU temperature in degrees Celsius. */
  setTemperature(dev: number, celsius: number): void {
    this.#lib.symbols.fake_set_temperature(dev, celsius);
  }

  /** While lost, every NVML call on the device returns NVML_ERROR_GPU_IS_LOST. */
  setLost(dev: number, lost: boolean): void {
    this.#lib.symbols.fake_set_lost(dev, lost ? 1 : 0);
  }

  /** Adds a compute process holding `bytes` (NOT_AVAILABLE reads back as null); MIG ids default to 0xFFFFFFFF. */
  addProcess(
    dev: number,
    pid: number,
    bytes: number | bigint,
    gpuInstanceId = 0xFFFFFFFF,
    computeInstanceId = 0xFFFFFFFF,
  ): void {
    const code = this.#lib.symbols.fake_add_process_ex(
      dev,
      pid,
      big(bytes),
      gpuInstanceId,
      computeInstanceId,
    );
    if (code !== 0) throw new Error(`Cannot add process ${pid} to fake device ${dev}: list full`);
  }

  /**
   * Adds a process to the driver's compute list, graphics list or both (a CUDA process,
   * a Vulkan one such as Deno's WebGPU, or `nvidia-smi`'s C+G), with the same bytes in each.
   */
  addListedProcess(
    dev: number,
    pid: number,
    bytes: number | bigint,
    lists: ReadonlyArray<"compute" | "graphics">,
  ): void {
    const bits = (lists.includes("compute") ? 1 : 0) | (lists.includes("graphics") ? 2 : 0);
    const code = this.#lib.symbols.fake_add_process_in(
      dev,
      pid,
      big(bytes),
      0xFFFFFFFF,
      0xFFFFFFFF,
      bits,
    );
    if (code !== 0) throw new Error(`Cannot add process ${pid} to fake device ${dev}: list full`);
  }

  /** Sets what `pid` holds through Vulkan (the graphics list); 0 removes it from that list. */
  setGraphicsProcess(dev: number, pid: number, bytes: number | bigint): void {
    if (this.#lib.symbols.fake_set_graphics_process(dev, pid, big(bytes)) !== 0) {
      throw new Error(`Cannot set graphics process ${pid} on fake device ${dev}: list full`);
    }
  }

  /** Removes the processes added with addProcess (not cudaMalloc holders). */
  clearProcesses(dev: number): void {
    this.#lib.symbols.fake_clear_processes(dev);
  }

  /** The next call of the NVML or CUDA function `fn` returns `code`. */
  failNext(fn: string, code: number): void {
    this.failTimes(fn, code, 1);
  }

  /** The next `times` calls of `fn` return `code`; 0 times cancels. */
  failTimes(fn: string, code: number, times: number): void {
    this.#lib.symbols.fake_fail_times(cstr(fn), code, times);
  }

  /** How many times `fn` was called since the last reset (across processes when shared). */
  callCount(fn: string): number {
    return Number(this.#lib.symbols.fake_call_count(cstr(fn)));
  }

  /** The double's used bytes on a device: other used + processes + cudaMalloc'd. */
  used(dev: number): number {
    return Number(this.#lib.symbols.fake_used(dev));
  }

  /** Bytes held by live cudaMalloc allocations on a device. */
  allocated(dev: number): number {
    return Number(this.#lib.symbols.fake_allocated(dev));
  }

  /** Unloads this handle on the library (and removes a private copy); safe to call twice. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#lib.close();
    // The file can go while others still have it mapped; the mapping stays valid.
    if (this.#copy) Deno.removeSync(this.#copy);
  }

  /** Closes at the end of a `using` block. */
  [Symbol.dispose](): void {
    this.close();
  }
}
