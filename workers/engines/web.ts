/**
 * onnxruntime-web inside a pipeline worker: the webgpu build for GPU placement and the
 * plain wasm build for the CPU fallback, with the model's files read into memory (the
 * graph plus every external data file, handed over as `externalData`). The webgpu EP
 * uploads weights straight into GPU buffers; the wasm EP copies them into its 4 GiB heap.
 * The wasm memory of whichever build loaded is watched, so the worker can report what
 * its session holds in RAM.
 * @module
 */
import type * as OrtModule from "onnxruntime-web";
import { type GpuTracker, installGpuTracker } from "../gpu_tracker.ts";
import { EngineFailure, type ModelFiles } from "./types.ts";

/** The onnxruntime-web module (both builds share its API). */
export type WebOrt = typeof OrtModule;

const memories: WebAssembly.Memory[] = [];
let watching = false;

/**
 * Records every WebAssembly.Memory the runtime creates or exports from here on, so that
 * {@link wasmMemoryBytes} can read the heap size (the threaded build creates its memory
 * in JS, the single-threaded one exports it).
 */
function watchWasmMemory(): void {
  if (watching) return;
  watching = true;
  const Memory = WebAssembly.Memory;
  const Wrapped = function (this: unknown, descriptor: WebAssembly.MemoryDescriptor) {
    const memory = new Memory(descriptor);
    memories.push(memory);
    return memory;
  } as unknown as typeof WebAssembly.Memory;
  Wrapped.prototype = Memory.prototype;
  WebAssembly.Memory = Wrapped;
  const instantiate = WebAssembly.instantiate;
  const note = (result: WebAssembly.Instance | WebAssembly.WebAssemblyInstantiatedSource) => {
    const instance = "instance" in result ? result.instance : result;
    for (const value of Object.values(instance.exports)) {
      if (value instanceof Memory && !memories.includes(value)) memories.push(value);
    }
    return result;
  };
  WebAssembly.instantiate =
    (async (...args: Parameters<typeof instantiate>) =>
      note(await instantiate(...args))) as typeof instantiate;
}

/** Bytes of wasm memory the loaded build holds (it grows and never shrinks). */
export function wasmMemoryBytes(): number {
  return memories.reduce((sum, m) => sum + m.buffer.byteLength, 0);
}

/** onnxruntime-web's buffer cache modes for its WebGPU EP. */
export type WebGpuBufferCacheMode = "disabled" | "lazyRelease" | "simple" | "bucket";

/** The WebGPU EP's buffer cache settings Headroom sets on every GPU session. */
export interface WebGpuBufferCache {
  storageBufferCacheMode: WebGpuBufferCacheMode;
  uniformBufferCacheMode: WebGpuBufferCacheMode;
}

/**
 * Freed means freed: onnxruntime-web 1.30 keeps the buffers a run frees in a cache by
 * default ("bucket" for storage, "simple" for uniforms), memory the driver still counts
 * while Headroom thinks the session let it go. "lazyRelease" destroys them at the end of
 * each run instead. "disabled" would destroy them at once, but in Deno 2.9.6 that panics
 * wgpu ("Buffer is destroyed", a buffer still used by a queued command): not usable.
 * Measured on the software adapter (a 1 MiB generated model, width 256, four runs of batch
 * 64–200): after the runs 2.43 MB tracked with ORT's defaults vs 1.46 MB; peak 2.63 vs
 * 2.08 MB; 0 after `release()` either way (ORT destroys its device).
 */
export const WEBGPU_BUFFER_CACHE: WebGpuBufferCache = {
  storageBufferCacheMode: "lazyRelease",
  uniformBufferCacheMode: "lazyRelease",
};

/** onnxruntime-web's own defaults, for measuring what {@link WEBGPU_BUFFER_CACHE} saves. */
export const ORT_DEFAULT_BUFFER_CACHE: WebGpuBufferCache = {
  storageBufferCacheMode: "bucket",
  uniformBufferCacheMode: "simple",
};

/** A loaded onnxruntime-web build. */
export interface WebBuild {
  ort: WebOrt;
  kind: "wasm" | "webgpu";
  tracker: GpuTracker | null;
}

/** Imports the webgpu build (after checking for an adapter); its wasm EP can serve the CPU too. */
export async function importWebgpuBuild(): Promise<WebBuild> {
  const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
  const adapter = await gpu?.requestAdapter().catch(() => null);
  if (!adapter) {
    throw new EngineFailure(
      "no_webgpu",
      gpu
        ? "No WebGPU adapter: navigator.gpu.requestAdapter() returned null; load this pipeline on the CPU"
        : "No WebGPU in this runtime (navigator.gpu is missing); load this pipeline on the CPU",
    );
  }
  // The tracker must wrap GPUDevice before onnxruntime-web asks for one.
  const tracker = installGpuTracker();
  watchWasmMemory();
  // A worker's location.origin is "null", which breaks the build's URL resolution.
  Object.defineProperty(globalThis, "location", { value: undefined, configurable: true });
  const ort = await import("onnxruntime-web/webgpu") as WebOrt;
  ort.env.wasm.numThreads = 1; // threads fail on the blob: URL this build uses
  return { ort, kind: "webgpu", tracker };
}

/** Imports the plain wasm build with `threads` threads. */
export async function importWasmBuild(threads: number): Promise<WebBuild> {
  watchWasmMemory();
  const ort = await import("onnxruntime-web") as WebOrt;
  ort.env.wasm.numThreads = Math.max(1, threads);
  return { ort, kind: "wasm", tracker: null };
}

/**
 * Creates a session from the model's files on `ep`. The files are read here and dropped
 * when this returns: the webgpu EP has uploaded them, the wasm EP copied them to its heap.
 * A webgpu session gets `cache` (default {@link WEBGPU_BUFFER_CACHE}).
 */
export async function createWebSession(
  ort: WebOrt,
  files: ModelFiles,
  ep: "webgpu" | "wasm",
  cache: WebGpuBufferCache = WEBGPU_BUFFER_CACHE,
): Promise<OrtModule.InferenceSession> {
  let graph: Uint8Array;
  const externalData: Array<{ path: string; data: Uint8Array }> = [];
  try {
    graph = await Deno.readFile(files.modelPath);
    for (const file of files.externalData) {
      externalData.push({ path: file.location, data: await Deno.readFile(file.path) });
    }
  } catch (error) {
    throw new EngineFailure(
      "load_failed",
      `Cannot read the model's files (${files.modelPath}): ${(error as Error).message}`,
    );
  }
  try {
    return await ort.InferenceSession.create(graph, {
      executionProviders: [ep === "webgpu" ? { name: "webgpu", ...cache } : ep],
      ...(externalData.length > 0 ? { externalData } : {}),
    });
  } finally {
    // Give the bytes back now rather than at some later GC: for a big model they are a
    // whole second copy of the weights.
    for (const bytes of [graph, ...externalData.map((f) => f.data)]) release(bytes);
  }
}

/** Frees a buffer's memory at once (transferring it to a zero-length buffer detaches it). */
function release(bytes: Uint8Array): void {
  const buffer = bytes.buffer as ArrayBuffer & { transfer?: (length: number) => ArrayBuffer };
  try {
    buffer.transfer?.(0);
  } catch { /* already detached or not transferable: the GC frees it */ }
}
