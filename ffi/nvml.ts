/**
 * Typed bindings to NVIDIA's NVML (libnvidia-ml) over `Deno.dlopen`: driver version,
 * devices, memory (v2 where the driver has it), utilization, temperature and the running
 * processes of both lists: compute (CUDA) and graphics (Vulkan, OpenGL: Deno's WebGPU on
 * NVIDIA is wgpu over Vulkan, so the driver lists Headroom's WebGPU sessions there). Every non-zero return code becomes an {@linkcode NvmlError}.
 *
 * All calls block: NVML queries take microseconds, and the API stays synchronous so a
 * snapshot is one uninterrupted read. `nvmlInit_v2` can take up to seconds on a driver
 * without persistence mode, so open NVML once at start.
 *
 * @example
 * ```ts ignore
 * const nvml = openNvml();
 * try {
 *   const mem = nvml.device(0).memory();
 *   console.log(mem.freeBytes);
 * } finally {
 *   nvml.close();
 * }
 * ```
 *
 * @module
 */
import { openLibrary } from "./_loader.ts";

/** Env var naming the NVML library's path; overrides the soname search. */
export const NVML_LIBRARY_ENV = "HEADROOM_NVML_LIBRARY";

/** Sonames tried when no path is given, best first. */
export const NVML_SONAMES = ["libnvidia-ml.so.1", "libnvidia-ml.so"] as const;

const symbols = {
  /** nvmlReturn_t nvmlInit_v2(void) */
  nvmlInit_v2: { parameters: [], result: "i32" },
  /** nvmlReturn_t nvmlShutdown(void) */
  nvmlShutdown: { parameters: [], result: "i32" },
  /** const char* nvmlErrorString(nvmlReturn_t result) */
  nvmlErrorString: { parameters: ["i32" /* nvmlReturn_t result */], result: "pointer" },
  /** nvmlReturn_t nvmlSystemGetDriverVersion(char* version, unsigned int length) */
  nvmlSystemGetDriverVersion: {
    parameters: ["buffer", /* char* version */ "u32" /* unsigned int length */],
    result: "i32",
  },
  /** nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int* deviceCount) */
  nvmlDeviceGetCount_v2: { parameters: ["buffer" /* unsigned int* deviceCount */], result: "i32" },
  /** nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t* device) */
  nvmlDeviceGetHandleByIndex_v2: {
    parameters: ["u32", /* unsigned int index */ "buffer" /* nvmlDevice_t* device */],
    result: "i32",
  },
  /** nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char* name, unsigned int length) */
  nvmlDeviceGetName: {
    parameters: [
      "pointer", /* nvmlDevice_t device */
      "buffer", /* char* name */
      "u32", /* unsigned int length */
    ],
    result: "i32",
  },
  /** nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char* uuid, unsigned int length) */
  nvmlDeviceGetUUID: {
    parameters: [
      "pointer", /* nvmlDevice_t device */
      "buffer", /* char* uuid */
      "u32", /* unsigned int length */
    ],
    result: "i32",
  },
  /** nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t* memory) */
  nvmlDeviceGetMemoryInfo: {
    parameters: ["pointer", /* nvmlDevice_t device */ "buffer" /* nvmlMemory_t* memory */],
    result: "i32",
  },
  /** nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t* memory); R510+ */
  nvmlDeviceGetMemoryInfo_v2: {
    parameters: ["pointer", /* nvmlDevice_t device */ "buffer" /* nvmlMemory_v2_t* memory */],
    result: "i32",
    optional: true,
  },
  /** nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t* utilization) */
  nvmlDeviceGetUtilizationRates: {
    parameters: [
      "pointer", /* nvmlDevice_t device */
      "buffer", /* nvmlUtilization_t* utilization */
    ],
    result: "i32",
  },
  /** nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, nvmlTemperatureSensors_t sensorType, unsigned int* temp) */
  nvmlDeviceGetTemperature: {
    parameters: [
      "pointer", /* nvmlDevice_t device */
      "i32", /* nvmlTemperatureSensors_t sensorType */
      "buffer", /* unsigned int* temp */
    ],
    result: "i32",
  },
  /** nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device, unsigned int* infoCount, nvmlProcessInfo_t* infos); R510+ */
  nvmlDeviceGetComputeRunningProcesses_v3: {
    parameters: [
      "pointer", /* nvmlDevice_t device */
      "buffer", /* unsigned int* infoCount */
      "buffer", /* nvmlProcessInfo_t* infos */
    ],
    result: "i32",
    optional: true,
  },
  /** nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v2(nvmlDevice_t device, unsigned int* infoCount, nvmlProcessInfo_t* infos); R470+ */
  nvmlDeviceGetComputeRunningProcesses_v2: {
    parameters: [
      "pointer", /* nvmlDevice_t device */
      "buffer", /* unsigned int* infoCount */
      "buffer", /* nvmlProcessInfo_t* infos */
    ],
    result: "i32",
    optional: true,
  },
  /** nvmlReturn_t nvmlDeviceGetComputeRunningProcesses(nvmlDevice_t device, unsigned int* infoCount, nvmlProcessInfo_v1_t* infos); the oldest */
  nvmlDeviceGetComputeRunningProcesses: {
    parameters: [
      "pointer", /* nvmlDevice_t device */
      "buffer", /* unsigned int* infoCount */
      "buffer", /* nvmlProcessInfo_v1_t* infos */
    ],
    result: "i32",
    optional: true,
  },
  /** nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v3(nvmlDevice_t device, unsigned int* infoCount, nvmlProcessInfo_t* infos); R510+ */
  nvmlDeviceGetGraphicsRunningProcesses_v3: {
    parameters: [
      "pointer", /* nvmlDevice_t device */
      "buffer", /* unsigned int* infoCount */
      "buffer", /* nvmlProcessInfo_t* infos */
    ],
    result: "i32",
    optional: true,
  },
  /** nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v2(nvmlDevice_t device, unsigned int* infoCount, nvmlProcessInfo_t* infos); R470+ */
  nvmlDeviceGetGraphicsRunningProcesses_v2: {
    parameters: [
      "pointer", /* nvmlDevice_t device */
      "buffer", /* unsigned int* infoCount */
      "buffer", /* nvmlProcessInfo_t* infos */
    ],
    result: "i32",
    optional: true,
  },
  /** nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses(nvmlDevice_t device, unsigned int* infoCount, nvmlProcessInfo_v1_t* infos); the oldest */
  nvmlDeviceGetGraphicsRunningProcesses: {
    parameters: [
      "pointer", /* nvmlDevice_t device */
      "buffer", /* unsigned int* infoCount */
      "buffer", /* nvmlProcessInfo_v1_t* infos */
    ],
    result: "i32",
    optional: true,
  },
} as const satisfies Deno.ForeignLibraryInterface;

type NvmlLib = Deno.DynamicLibrary<typeof symbols>;

/** nvmlReturn_t codes other than NVML_SUCCESS, by name without the `NVML_ERROR_` prefix. */
export const NVML_ERROR = {
  UNINITIALIZED: 1,
  INVALID_ARGUMENT: 2,
  NOT_SUPPORTED: 3,
  NO_PERMISSION: 4,
  ALREADY_INITIALIZED: 5,
  NOT_FOUND: 6,
  INSUFFICIENT_SIZE: 7,
  INSUFFICIENT_POWER: 8,
  DRIVER_NOT_LOADED: 9,
  TIMEOUT: 10,
  IRQ_ISSUE: 11,
  LIBRARY_NOT_FOUND: 12,
  FUNCTION_NOT_FOUND: 13,
  CORRUPTED_INFOROM: 14,
  GPU_IS_LOST: 15,
  RESET_REQUIRED: 16,
  OPERATING_SYSTEM: 17,
  LIB_RM_VERSION_MISMATCH: 18,
  IN_USE: 19,
  MEMORY: 20,
  NO_DATA: 21,
  VGPU_ECC_NOT_ENABLED: 22,
  INSUFFICIENT_RESOURCES: 23,
  FREQ_NOT_SUPPORTED: 24,
  ARGUMENT_VERSION_MISMATCH: 25,
  DEPRECATED: 26,
  NOT_READY: 27,
  GPU_NOT_FOUND: 28,
  INVALID_STATE: 29,
  UNKNOWN: 999,
} as const;

const ERROR_NAMES = new Map<number, string>(
  Object.entries(NVML_ERROR).map(([name, code]) => [code, `NVML_ERROR_${name}`]),
);

/** The C name of an nvmlReturn_t code, e.g. `NVML_ERROR_GPU_IS_LOST` for 15. */
export function nvmlErrorName(code: number): string {
  if (code === 0) return "NVML_SUCCESS";
  return ERROR_NAMES.get(code) ?? `NVML_ERROR_${code}`;
}

/** A failed NVML call: the function, its return code, the code's C name and NVML's text. */
export class NvmlError extends Error {
  /** The nvmlReturn_t value. */
  readonly code: number;
  /** The code's C name, e.g. `NVML_ERROR_GPU_IS_LOST`. */
  readonly nvmlName: string;
  /** The NVML function that failed. */
  readonly fn: string;
  /** The text of `nvmlErrorString(code)`. */
  readonly description: string;

  /** Builds `"<fn> failed: <name> (<code>): <description>"`. */
  constructor(fn: string, code: number, description: string) {
    const nvmlName = nvmlErrorName(code);
    super(`${fn} failed: ${nvmlName} (${code}): ${description}`);
    this.name = "NvmlError";
    this.code = code;
    this.nvmlName = nvmlName;
    this.fn = fn;
    this.description = description;
  }
}

/**
 * Whether an error means the GPU itself is gone and needs a reset or reboot: GPU_IS_LOST
 * (fell off the bus, Xid 79) or RESET_REQUIRED. UNKNOWN is left out on purpose: drivers
 * return it for passing faults too, and treating those as a lost GPU would evict every
 * pipeline for nothing.
 */
export function isGpuLost(err: unknown): boolean {
  return err instanceof NvmlError &&
    (err.code === NVML_ERROR.GPU_IS_LOST || err.code === NVML_ERROR.RESET_REQUIRED);
}

/** Byte layout of nvmlMemory_t (all unsigned long long). */
export const NVML_MEMORY = { size: 24, total: 0, free: 8, used: 16 } as const;

/** Byte layout of nvmlMemory_v2_t: a u32 version, 4 bytes padding, then u64s. */
export const NVML_MEMORY_V2 = {
  size: 40,
  version: 0,
  total: 8,
  reserved: 16,
  free: 24,
  used: 32,
} as const;

/** nvmlMemory_v2: NVML_STRUCT_VERSION(Memory, 2) = sizeof(nvmlMemory_v2_t) | 2 << 24. */
export const NVML_MEMORY_V2_VERSION = NVML_MEMORY_V2.size | (2 << 24);

/** Byte layout of nvmlUtilization_t (unsigned ints, percent). */
export const NVML_UTILIZATION = { size: 8, gpu: 0, memory: 4 } as const;

/** Byte layout of nvmlProcessInfo_t (v2 and v3 share it): pid, pad, u64 bytes, two u32 ids. */
export const NVML_PROCESS_INFO = {
  size: 24,
  pid: 0,
  usedGpuMemory: 8,
  gpuInstanceId: 16,
  computeInstanceId: 20,
} as const;

/** Byte layout of nvmlProcessInfo_v1_t (the unversioned symbols): pid, pad, u64 bytes. */
export const NVML_PROCESS_INFO_V1 = { size: 16, pid: 0, usedGpuMemory: 8 } as const;

/** NVML's "not available" value for a u64 field such as usedGpuMemory. */
export const NVML_VALUE_NOT_AVAILABLE = 0xFFFFFFFFFFFFFFFFn;

/** nvmlTemperatureSensors_t NVML_TEMPERATURE_GPU: the GPU die sensor. */
export const NVML_TEMPERATURE_GPU = 0;

/** NVML_DEVICE_NAME_V2_BUFFER_SIZE, NVML_DEVICE_UUID_V2_BUFFER_SIZE: the largest string buffers. */
const STRING_BUFFER_SIZE = 96;
/** How many times the process list is re-read when it grows between two calls. */
const PROCESS_LIST_ATTEMPTS = 5;
/** Room for processes that start between the size query and the read. */
const PROCESS_LIST_SLACK = 8;

/** Device memory in bytes, as the driver reports it. */
export interface NvmlMemoryInfo {
  /** Total memory on the device. */
  totalBytes: number;
  /** Memory not allocated by anyone. */
  freeBytes: number;
  /** Allocated memory: v2 excludes the driver's reserved memory, v1 includes it (total - free). */
  usedBytes: number;
  /** Memory the driver and firmware reserve; null where only v1 is available. */
  reservedBytes: number | null;
}

/** One process with a compute context on a device. */
export interface NvmlProcess {
  /** The process id (in the driver's pid namespace). */
  pid: number;
  /** Bytes of device memory it holds; null when the driver cannot tell (e.g. some vGPU/MIG setups). */
  usedBytes: number | null;
  /** MIG GPU instance id; 0xFFFFFFFF outside MIG. */
  gpuInstanceId: number;
  /** MIG compute instance id; 0xFFFFFFFF outside MIG. */
  computeInstanceId: number;
}

/**
 * The driver's two process lists: "compute" (CUDA contexts) and "graphics" (Vulkan and
 * OpenGL contexts; `nvidia-smi` types C, G and C+G).
 */
export type NvmlProcessList = "compute" | "graphics";

/** One process of the merged lists: its figures, and the lists it was found in. */
export interface NvmlListedProcess extends NvmlProcess {
  /** Every list the pid is in, compute first. */
  lists: NvmlProcessList[];
}

/** Both process lists merged by pid, and the lists this driver could not read. */
export interface NvmlProcessLists {
  /** One entry per pid, in the order first seen (compute list first). */
  processes: NvmlListedProcess[];
  /** Each list that could not be read, with the driver's error (empty when both were). */
  unavailable: Array<{ list: NvmlProcessList; error: NvmlError }>;
}

/** GPU and memory-controller busy time over the driver's last sample period, in percent. */
export interface NvmlUtilization {
  /** Percent of time a kernel was running. */
  gpuPercent: number;
  /** Percent of time device memory was read or written. */
  memoryPercent: number;
}

/** State shared by an Nvml and its devices: the library, scratch buffers, the closed flag. */
class Core {
  lib: NvmlLib;
  closed = false;
  useMemoryV2 = true;
  readonly out = new Uint8Array(8);
  readonly outView = new DataView(this.out.buffer);
  readonly str = new Uint8Array(STRING_BUFFER_SIZE);
  readonly mem = new Uint8Array(NVML_MEMORY_V2.size);
  readonly memView = new DataView(this.mem.buffer);
  readonly util = new Uint8Array(NVML_UTILIZATION.size);
  readonly utilView = new DataView(this.util.buffer);
  readonly count = new Uint32Array(1);
  procs = new Uint8Array(NVML_PROCESS_INFO.size * 32);
  readonly decoder = new TextDecoder();

  constructor(lib: NvmlLib) {
    this.lib = lib;
  }

  /** Throws NvmlError for a non-zero return code. */
  check(fn: string, code: number): void {
    if (code !== 0) throw this.error(fn, code);
  }

  error(fn: string, code: number): NvmlError {
    let description = "";
    if (!this.closed) {
      const ptr = this.lib.symbols.nvmlErrorString(code);
      if (ptr !== null) description = Deno.UnsafePointerView.getCString(ptr);
    }
    return new NvmlError(fn, code, description);
  }

  /** Throws when the library was closed: calling into it then would crash the process. */
  ensureOpen(fn: string): void {
    if (this.closed) {
      throw new NvmlError(fn, NVML_ERROR.UNINITIALIZED, "NVML was closed; call openNvml() again");
    }
  }

  /** Reads the NUL-terminated string NVML wrote into `str`. */
  cString(): string {
    const end = this.str.indexOf(0);
    return this.decoder.decode(this.str.subarray(0, end < 0 ? this.str.length : end));
  }
}

/** An open NVML session; one per process is enough. */
export class Nvml {
  /** True when the driver exports nvmlDeviceGetMemoryInfo_v2 (R510+), which reports reserved memory. */
  readonly hasMemoryInfoV2: boolean;
  /** The library path or soname that opened. */
  readonly path: string;
  #core: Core;

  /** Wraps an opened library on which nvmlInit_v2 succeeded; use {@linkcode openNvml}. */
  constructor(lib: NvmlLib, path: string) {
    this.#core = new Core(lib);
    this.path = path;
    this.hasMemoryInfoV2 = lib.symbols.nvmlDeviceGetMemoryInfo_v2 !== null;
  }

  /** The driver version, e.g. "580.95.05". */
  driverVersion(): string {
    const c = this.#core;
    c.ensureOpen("nvmlSystemGetDriverVersion");
    c.check(
      "nvmlSystemGetDriverVersion",
      c.lib.symbols.nvmlSystemGetDriverVersion(c.str, c.str.length),
    );
    return c.cString();
  }

  /** How many NVIDIA devices the driver sees (including ones this process may not use). */
  deviceCount(): number {
    const c = this.#core;
    c.ensureOpen("nvmlDeviceGetCount_v2");
    c.check("nvmlDeviceGetCount_v2", c.lib.symbols.nvmlDeviceGetCount_v2(c.count));
    return c.count[0];
  }

  /** A handle on device `index`; throws NvmlError for an index past the count or a lost GPU. */
  device(index: number): NvmlDevice {
    const device = new NvmlDevice(this.#core, index);
    device.handle();
    return device;
  }

  /** Shuts NVML down and unloads the library; safe to call twice. */
  close(): void {
    const c = this.#core;
    if (c.closed) return;
    // The shutdown code is ignored: there is nothing to do about it, and the library
    // must be unloaded either way.
    c.lib.symbols.nvmlShutdown();
    c.closed = true;
    c.lib.close();
  }
}

/** One NVML device. A lost GPU surfaces as NvmlError from each method, never a crash. */
export class NvmlDevice {
  /** The NVML device index. */
  readonly index: number;
  #core: Core;
  #handle: Deno.PointerValue | undefined;

  /** Binds device `index` of an open NVML session; use {@linkcode Nvml.device}. */
  constructor(core: Core, index: number) {
    this.#core = core;
    this.index = index;
  }

  /** The nvmlDevice_t, fetched again after an error that can make a cached one stale. */
  handle(): Deno.PointerValue {
    const c = this.#core;
    c.ensureOpen("nvmlDeviceGetHandleByIndex_v2");
    if (this.#handle !== undefined) return this.#handle;
    c.check(
      "nvmlDeviceGetHandleByIndex_v2",
      c.lib.symbols.nvmlDeviceGetHandleByIndex_v2(this.index, c.out),
    );
    this.#handle = Deno.UnsafePointer.create(c.outView.getBigUint64(0, true));
    return this.#handle;
  }

  #check(fn: string, code: number): void {
    if (code === 0) return;
    if (
      code === NVML_ERROR.GPU_IS_LOST || code === NVML_ERROR.RESET_REQUIRED ||
      code === NVML_ERROR.INVALID_ARGUMENT
    ) {
      this.#handle = undefined;
    }
    throw this.#core.error(fn, code);
  }

  /** The product name, e.g. "NVIDIA H100 80GB HBM3". */
  name(): string {
    const h = this.handle();
    const c = this.#core;
    this.#check("nvmlDeviceGetName", c.lib.symbols.nvmlDeviceGetName(h, c.str, c.str.length));
    return c.cString();
  }

  /** The device UUID, e.g. "GPU-5e3b…"; stable across reboots, unlike the index. */
  uuid(): string {
    const h = this.handle();
    const c = this.#core;
    this.#check("nvmlDeviceGetUUID", c.lib.symbols.nvmlDeviceGetUUID(h, c.str, c.str.length));
    return c.cString();
  }

  /** Total, free, used and (v2) reserved memory, through nvmlDeviceGetMemoryInfo_v2 where present. */
  memory(): NvmlMemoryInfo {
    const h = this.handle();
    const c = this.#core;
    const v = c.memView;
    const v2 = c.lib.symbols.nvmlDeviceGetMemoryInfo_v2;
    if (v2 !== null && c.useMemoryV2) {
      v.setUint32(NVML_MEMORY_V2.version, NVML_MEMORY_V2_VERSION, true);
      const code = v2(h, c.mem);
      // Some drivers export v2 but refuse it (vGPU guests, a struct version they do not
      // know): fall back to v1 from then on rather than report nothing.
      if (code === NVML_ERROR.NOT_SUPPORTED || code === NVML_ERROR.ARGUMENT_VERSION_MISMATCH) {
        c.useMemoryV2 = false;
        return this.memory();
      }
      this.#check("nvmlDeviceGetMemoryInfo_v2", code);
      return {
        totalBytes: Number(v.getBigUint64(NVML_MEMORY_V2.total, true)),
        freeBytes: Number(v.getBigUint64(NVML_MEMORY_V2.free, true)),
        usedBytes: Number(v.getBigUint64(NVML_MEMORY_V2.used, true)),
        reservedBytes: Number(v.getBigUint64(NVML_MEMORY_V2.reserved, true)),
      };
    }
    this.#check("nvmlDeviceGetMemoryInfo", c.lib.symbols.nvmlDeviceGetMemoryInfo(h, c.mem));
    return {
      totalBytes: Number(v.getBigUint64(NVML_MEMORY.total, true)),
      freeBytes: Number(v.getBigUint64(NVML_MEMORY.free, true)),
      usedBytes: Number(v.getBigUint64(NVML_MEMORY.used, true)),
      reservedBytes: null,
    };
  }

  /** GPU and memory utilization in percent over the driver's last sample period. */
  utilization(): NvmlUtilization {
    const h = this.handle();
    const c = this.#core;
    this.#check(
      "nvmlDeviceGetUtilizationRates",
      c.lib.symbols.nvmlDeviceGetUtilizationRates(h, c.util),
    );
    return {
      gpuPercent: c.utilView.getUint32(NVML_UTILIZATION.gpu, true),
      memoryPercent: c.utilView.getUint32(NVML_UTILIZATION.memory, true),
    };
  }

  /** The GPU die temperature in degrees Celsius. */
  temperatureC(): number {
    const h = this.handle();
    const c = this.#core;
    this.#check(
      "nvmlDeviceGetTemperature",
      c.lib.symbols.nvmlDeviceGetTemperature(h, NVML_TEMPERATURE_GPU, c.out),
    );
    return c.outView.getUint32(0, true);
  }

  /**
   * Processes with a compute (CUDA) context on this device, through the newest symbol the
   * driver exports (_v3, _v2, then the unversioned one).
   */
  computeProcesses(): NvmlProcess[] {
    const s = this.#core.lib.symbols;
    return this.#processList("Compute", [
      [s.nvmlDeviceGetComputeRunningProcesses_v3, "_v3"],
      [s.nvmlDeviceGetComputeRunningProcesses_v2, "_v2"],
      [s.nvmlDeviceGetComputeRunningProcesses, ""],
    ]);
  }

  /**
   * Processes with a graphics context (Vulkan, OpenGL) on this device: where the driver
   * lists a process that allocates through WebGPU, such as Headroom's GPU sessions.
   */
  graphicsProcesses(): NvmlProcess[] {
    const s = this.#core.lib.symbols;
    return this.#processList("Graphics", [
      [s.nvmlDeviceGetGraphicsRunningProcesses_v3, "_v3"],
      [s.nvmlDeviceGetGraphicsRunningProcesses_v2, "_v2"],
      [s.nvmlDeviceGetGraphicsRunningProcesses, ""],
    ]);
  }

  /**
   * Both lists merged by pid. A process in both (`nvidia-smi` type C+G) is one entry
   * whose bytes are the larger of the two figures, not their sum: the driver reports the
   * process's device memory in each list it is in. A list the driver cannot give
   * (an old driver without the symbol, NOT_SUPPORTED) lands in `unavailable`; a lost
   * GPU throws.
   */
  processes(): NvmlProcessLists {
    const byPid = new Map<number, NvmlListedProcess>();
    const unavailable: NvmlProcessLists["unavailable"] = [];
    const lists: Array<[NvmlProcessList, () => NvmlProcess[]]> = [
      ["compute", () => this.computeProcesses()],
      ["graphics", () => this.graphicsProcesses()],
    ];
    for (const [list, read] of lists) {
      let found: NvmlProcess[];
      try {
        found = read();
      } catch (error) {
        if (!(error instanceof NvmlError) || isGpuLost(error)) throw error;
        unavailable.push({ list, error });
        continue;
      }
      for (const process of found) {
        const seen = byPid.get(process.pid);
        if (!seen) {
          byPid.set(process.pid, { ...process, lists: [list] });
          continue;
        }
        if (!seen.lists.includes(list)) seen.lists.push(list);
        if (process.usedBytes !== null) {
          seen.usedBytes = Math.max(seen.usedBytes ?? 0, process.usedBytes);
        }
      }
    }
    return { processes: [...byPid.values()], unavailable };
  }

  /** Reads one process list through the first of `calls` the driver exports. */
  #processList(
    kind: "Compute" | "Graphics",
    calls: Array<[ProcessListCall | null, "_v3" | "_v2" | ""]>,
  ): NvmlProcess[] {
    const h = this.handle();
    const c = this.#core;
    const found = calls.find(([call]) => call !== null);
    if (!found) {
      const names = calls.map(([, v]) => `nvmlDeviceGet${kind}RunningProcesses${v}`);
      throw c.error(names.join(", "), NVML_ERROR.FUNCTION_NOT_FOUND);
    }
    const [call, version] = found as [ProcessListCall, string];
    const fn = `nvmlDeviceGet${kind}RunningProcesses${version}`;
    const layout = version === "" ? NVML_PROCESS_INFO_V1 : NVML_PROCESS_INFO;
    let code = 0;
    for (let attempt = 0; attempt < PROCESS_LIST_ATTEMPTS; attempt++) {
      const capacity = Math.floor(c.procs.length / layout.size);
      c.count[0] = capacity;
      code = call(h, c.count, c.procs);
      if (code === NVML_ERROR.INSUFFICIENT_SIZE) {
        const needed = Math.max(c.count[0], capacity) + PROCESS_LIST_SLACK;
        c.procs = new Uint8Array(needed * NVML_PROCESS_INFO.size);
        continue;
      }
      this.#check(fn, code);
      return readProcesses(c.procs, c.count[0], version === "");
    }
    throw c.error(fn, code);
  }
}

/** The C signature every nvmlDevice*RunningProcesses* symbol shares. */
type ProcessListCall = (
  device: Deno.PointerValue,
  infoCount: Uint32Array,
  infos: Uint8Array,
) => number;

/** Decodes `count` process structs; v1 structs have no MIG ids (read as not available). */
function readProcesses(bytes: Uint8Array, count: number, v1: boolean): NvmlProcess[] {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const layout = v1 ? NVML_PROCESS_INFO_V1 : NVML_PROCESS_INFO;
  const list: NvmlProcess[] = [];
  for (let i = 0; i < count; i++) {
    const at = i * layout.size;
    const used = v.getBigUint64(at + layout.usedGpuMemory, true);
    list.push({
      pid: v.getUint32(at + layout.pid, true),
      usedBytes: used === NVML_VALUE_NOT_AVAILABLE ? null : Number(used),
      gpuInstanceId: v1 ? NO_MIG_ID : v.getUint32(at + NVML_PROCESS_INFO.gpuInstanceId, true),
      computeInstanceId: v1
        ? NO_MIG_ID
        : v.getUint32(at + NVML_PROCESS_INFO.computeInstanceId, true),
    });
  }
  return list;
}

/** NVML's u32 "not available" value: the MIG ids outside MIG. */
const NO_MIG_ID = 0xFFFFFFFF;

/**
 * Opens NVML from `path`, else `$HEADROOM_NVML_LIBRARY`, else the usual sonames, and
 * initializes it. Throws LibraryNotFoundError when there is no library (no NVIDIA
 * driver: a normal state) and NvmlError when nvmlInit_v2 fails.
 */
export function openNvml(path?: string): Nvml {
  const { lib, path: opened } = openLibrary("NVML", {
    envVar: NVML_LIBRARY_ENV,
    path,
    sonames: NVML_SONAMES,
    install: "Install the NVIDIA driver",
  }, symbols);
  const code = lib.symbols.nvmlInit_v2();
  if (code !== 0) {
    const ptr = lib.symbols.nvmlErrorString(code);
    const description = ptr === null ? "" : Deno.UnsafePointerView.getCString(ptr);
    lib.close();
    throw new NvmlError("nvmlInit_v2", code, description);
  }
  return new Nvml(lib, opened);
}
