/**
 * Typed bindings to the CUDA runtime (libcudart) over `Deno.dlopen`: device count,
 * `cudaMemGetInfo`, versions, and `cudaMalloc`/`cudaFree` for the pressure tool.
 *
 * Nothing is loaded until {@linkcode openCudart} is called, and the first real call
 * creates a CUDA context, which costs hundreds of MB of VRAM: prefer NVML for
 * monitoring. A machine without a driver is a normal state: {@linkcode isNoDriver}.
 *
 * @example
 * ```ts ignore
 * const cuda = openCudart();
 * try {
 *   console.log(cuda.memGetInfo().freeBytes);
 * } catch (err) {
 *   if (!isNoDriver(err)) throw err;
 * } finally {
 *   cuda.close();
 * }
 * ```
 *
 * @module
 */
import { openLibrary } from "./_loader.ts";

/** Env var naming the CUDA runtime library's path; overrides the search. */
export const CUDART_LIBRARY_ENV = "HEADROOM_CUDART_LIBRARY";

/** Sonames tried when no path is given, newest runtime first. */
export const CUDART_SONAMES = ["libcudart.so.13", "libcudart.so.12", "libcudart.so"] as const;

const symbols = {
  /** cudaError_t cudaGetDeviceCount(int* count) */
  cudaGetDeviceCount: { parameters: ["buffer" /* int* count */], result: "i32" },
  /** cudaError_t cudaSetDevice(int device) */
  cudaSetDevice: { parameters: ["i32" /* int device */], result: "i32" },
  /** cudaError_t cudaMemGetInfo(size_t* free, size_t* total) */
  cudaMemGetInfo: {
    parameters: ["buffer", /* size_t* free */ "buffer" /* size_t* total */],
    result: "i32",
  },
  /** cudaError_t cudaRuntimeGetVersion(int* runtimeVersion) */
  cudaRuntimeGetVersion: { parameters: ["buffer" /* int* runtimeVersion */], result: "i32" },
  /** cudaError_t cudaDriverGetVersion(int* driverVersion) */
  cudaDriverGetVersion: { parameters: ["buffer" /* int* driverVersion */], result: "i32" },
  /** const char* cudaGetErrorName(cudaError_t error) */
  cudaGetErrorName: { parameters: ["i32" /* cudaError_t error */], result: "pointer" },
  /** const char* cudaGetErrorString(cudaError_t error) */
  cudaGetErrorString: { parameters: ["i32" /* cudaError_t error */], result: "pointer" },
  /** cudaError_t cudaMalloc(void** devPtr, size_t size) */
  cudaMalloc: {
    parameters: ["buffer", /* void** devPtr */ "usize" /* size_t size */],
    result: "i32",
  },
  /** cudaError_t cudaFree(void* devPtr) */
  cudaFree: { parameters: ["pointer" /* void* devPtr */], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

type CudartLib = Deno.DynamicLibrary<typeof symbols>;

/** cudaError_t codes Headroom treats specially. */
export const CUDA_ERROR = {
  InvalidValue: 1,
  MemoryAllocation: 2,
  CudartUnloading: 4,
  StubLibrary: 34,
  InsufficientDriver: 35,
  NoDevice: 100,
  InvalidDevice: 101,
} as const;

/** A failed CUDA runtime call: the function, its code, the code's name and CUDA's text. */
export class CudaError extends Error {
  /** The cudaError_t value. */
  readonly code: number;
  /** The code's name from cudaGetErrorName, e.g. `cudaErrorMemoryAllocation`. */
  readonly cudaName: string;
  /** The CUDA runtime function that failed. */
  readonly fn: string;
  /** The text of cudaGetErrorString(code). */
  readonly description: string;

  /** Builds the message; driver and device absence lead with what it means. */
  constructor(fn: string, code: number, cudaName: string, description: string) {
    const detail = `${fn} failed: ${cudaName} (${code}): ${description}`;
    super(`${lead(code)}${detail}`);
    this.name = "CudaError";
    this.code = code;
    this.cudaName = cudaName;
    this.fn = fn;
    this.description = description;
  }
}

function lead(code: number): string {
  switch (code) {
    case CUDA_ERROR.InsufficientDriver:
      return "No NVIDIA driver (none is installed, or it is older than this CUDA runtime needs): ";
    case CUDA_ERROR.StubLibrary:
      return "No NVIDIA driver (only the CUDA stub library is installed): ";
    case CUDA_ERROR.NoDevice:
      return "No CUDA device: ";
    default:
      return "";
  }
}

/**
 * Whether CUDA cannot be used on this machine at all: no NVIDIA driver (35, or the stub
 * driver, 34) or no CUDA device (100). A normal state for a CPU-only host, not a failure.
 */
export function isNoDriver(err: unknown): boolean {
  return err instanceof CudaError &&
    (err.code === CUDA_ERROR.InsufficientDriver || err.code === CUDA_ERROR.StubLibrary ||
      err.code === CUDA_ERROR.NoDevice);
}

/** Whether the error is cudaErrorNoDevice (100): a driver, but no CUDA device. */
export function isNoDevice(err: unknown): boolean {
  return err instanceof CudaError && err.code === CUDA_ERROR.NoDevice;
}

/** An open CUDA runtime library. */
export class Cudart {
  /** The library path or soname that opened. */
  readonly path: string;
  #lib: CudartLib;
  #closed = false;
  readonly #a = new Uint8Array(8);
  readonly #b = new Uint8Array(8);
  readonly #aView = new DataView(this.#a.buffer);
  readonly #bView = new DataView(this.#b.buffer);

  /** Wraps an opened library; use {@linkcode openCudart}. */
  constructor(lib: CudartLib, path: string) {
    this.#lib = lib;
    this.path = path;
  }

  #string(fn: "cudaGetErrorName" | "cudaGetErrorString", code: number): string {
    const ptr = this.#lib.symbols[fn](code);
    return ptr === null ? "" : Deno.UnsafePointerView.getCString(ptr);
  }

  #check(fn: string, code: number): void {
    if (code === 0) return;
    throw new CudaError(
      fn,
      code,
      this.#string("cudaGetErrorName", code),
      this.#string("cudaGetErrorString", code),
    );
  }

  #symbols(fn: string): CudartLib["symbols"] {
    if (this.#closed) {
      throw new CudaError(
        fn,
        CUDA_ERROR.CudartUnloading,
        "cudaErrorCudartUnloading",
        "the CUDA runtime was closed; call openCudart() again",
      );
    }
    return this.#lib.symbols;
  }

  /** The CUDA runtime version, e.g. 13000 for 13.0. Works without a driver. */
  runtimeVersion(): number {
    this.#check(
      "cudaRuntimeGetVersion",
      this.#symbols("cudaRuntimeGetVersion").cudaRuntimeGetVersion(this.#a),
    );
    return this.#aView.getInt32(0, true);
  }

  /** The newest CUDA version the driver supports, e.g. 13000; 0 when there is no driver. */
  driverVersion(): number {
    this.#check(
      "cudaDriverGetVersion",
      this.#symbols("cudaDriverGetVersion").cudaDriverGetVersion(this.#a),
    );
    return this.#aView.getInt32(0, true);
  }

  /** How many CUDA devices this process can use (CUDA_VISIBLE_DEVICES applies). */
  deviceCount(): number {
    this.#check(
      "cudaGetDeviceCount",
      this.#symbols("cudaGetDeviceCount").cudaGetDeviceCount(this.#a),
    );
    return this.#aView.getInt32(0, true);
  }

  /** Makes device `i` current for this thread's later calls. */
  setDevice(i: number): void {
    this.#check("cudaSetDevice", this.#symbols("cudaSetDevice").cudaSetDevice(i));
  }

  /** Free and total memory of the current device, in bytes. */
  memGetInfo(): { freeBytes: number; totalBytes: number } {
    this.#check("cudaMemGetInfo", this.#symbols("cudaMemGetInfo").cudaMemGetInfo(this.#a, this.#b));
    return {
      freeBytes: Number(this.#aView.getBigUint64(0, true)),
      totalBytes: Number(this.#bView.getBigUint64(0, true)),
    };
  }

  /** Allocates `bytes` of device memory; null for 0 bytes. Throws cudaErrorMemoryAllocation when full. */
  malloc(bytes: number): Deno.PointerValue {
    this.#check("cudaMalloc", this.#symbols("cudaMalloc").cudaMalloc(this.#a, BigInt(bytes)));
    return Deno.UnsafePointer.create(this.#aView.getBigUint64(0, true));
  }

  /** Frees memory from {@linkcode Cudart.malloc}; null is a no-op, as in CUDA. */
  free(ptr: Deno.PointerValue): void {
    this.#check("cudaFree", this.#symbols("cudaFree").cudaFree(ptr));
  }

  /** Unloads the library; safe to call twice. Device memory still allocated is not freed. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#lib.close();
  }
}

/** Lists /usr/local/cuda*\/lib64/libcudart.so* (newest first), for toolkits not on the loader path. */
export function findToolkitCudart(root = "/usr/local"): string[] {
  const found: string[] = [];
  for (
    const dir of listDir(root).filter((n) => n === "cuda" || n.startsWith("cuda-")).sort(
      byVersionDesc,
    )
  ) {
    const lib64 = `${root}/${dir}/lib64`;
    const libs = listDir(lib64).filter((n) => /^libcudart\.so(\.\d+)*$/.test(n));
    found.push(...libs.sort(byVersionDesc).map((n) => `${lib64}/${n}`));
  }
  return found;
}

function listDir(path: string): string[] {
  try {
    return [...Deno.readDirSync(path)].map((e) => e.name);
  } catch {
    return []; // missing, unreadable, or no read permission: nothing to offer
  }
}

/** Orders names by the numbers they contain, highest first; names without numbers last. */
function byVersionDesc(a: string, b: string): number {
  const nums = (s: string) => (s.match(/\d+/g) ?? []).map(Number);
  const x = nums(a);
  const y = nums(b);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (y[i] ?? -1) - (x[i] ?? -1);
    if (d !== 0) return d;
  }
  return 0;
}

/**
 * Opens the CUDA runtime from `path`, else `$HEADROOM_CUDART_LIBRARY`, else
 * libcudart.so.13/.12/.so, else /usr/local/cuda*\/lib64. Throws LibraryNotFoundError
 * when none loads. Opening creates no CUDA context; the first device call does.
 */
export function openCudart(path?: string): Cudart {
  const { lib, path: opened } = openLibrary("CUDA runtime", {
    envVar: CUDART_LIBRARY_ENV,
    path,
    sonames: CUDART_SONAMES,
    search: () => findToolkitCudart(),
    install: "Install the CUDA toolkit (libcudart)",
  }, symbols);
  return new Cudart(lib, opened);
}
