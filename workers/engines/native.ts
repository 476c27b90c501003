/**
 * onnxruntime-node's native CPU execution provider inside a pipeline worker (through
 * Deno's Node-API support; the worker needs FFI permission for the addon's folder only).
 * Sessions are created from the model's path, so onnxruntime reads the graph and maps
 * its external data itself: the weights are never copied through JavaScript, and there
 * is no 2 GiB / 4 GiB wasm limit.
 * @module
 */
import { createRequire } from "node:module";
import type * as OrtModule from "onnxruntime-web";
import { EngineFailure } from "./types.ts";

/** onnxruntime-node's API (the same onnxruntime-common surface as onnxruntime-web's). */
export type NativeOrt = Pick<typeof OrtModule, "InferenceSession" | "Tensor">;

/** The addon's folder inside an onnxruntime-node package, for this platform. */
export function addonDir(packageDir: string): string {
  return `${packageDir.replace(/\/+$/, "")}/bin/napi-v6/${Deno.build.os}/${
    Deno.build.arch === "x86_64" ? "x64" : "arm64"
  }`;
}

/**
 * Loads onnxruntime-node from its package folder (`require`, as Node would: it is
 * CommonJS and loads `onnxruntime_binding.node`). Throws an {@link EngineFailure} with
 * the loader's own message when the addon cannot load.
 */
export function loadNativeOrt(packageDir: string): NativeOrt {
  try {
    const require = createRequire(`${packageDir.replace(/\/+$/, "")}/package.json`);
    return require(`${packageDir.replace(/\/+$/, "")}/dist/index.js`) as NativeOrt;
  } catch (error) {
    throw new EngineFailure(
      "load_failed",
      `onnxruntime-node could not load from ${packageDir}: ${(error as Error).message}`,
    );
  }
}

/**
 * Creates a CPU session reading `modelPath` (and its external data beside it) directly.
 * Pre-packing is off: with it, onnxruntime copies every MatMul weight into a packed
 * buffer at load (a second copy while it works, ~1 s per GiB); without it, it maps the
 * page-aligned external data straight from the file (create ~10 ms for 1 GiB, the pages
 * shared with the page cache), and a batch-1 run measured the same (41–53 ms either way).
 */
export async function createNativeSession(
  ort: NativeOrt,
  modelPath: string,
  threads: number,
): Promise<OrtModule.InferenceSession> {
  return await ort.InferenceSession.create(modelPath, {
    executionProviders: ["cpu"],
    intraOpNumThreads: Math.max(1, threads),
    interOpNumThreads: 1,
    extra: { session: { disable_prepacking: "1" } },
  });
}

/**
 * A float16 input tensor the native engine can read. onnxruntime-common wraps a float16
 * tensor's Uint16Array bits in a Float16Array where the runtime has one (Deno does), and
 * onnxruntime-node's addon reads a Float16Array as 0 bytes ("not enough space: expected
 * 12, got 0"); the tensor keeps the Uint16Array bits, which the addon copies as they are.
 */
export function nativeFloat16Tensor(
  ort: Pick<NativeOrt, "Tensor">,
  bits: Uint16Array,
  dims: readonly number[],
): OrtModule.Tensor {
  const tensor = new ort.Tensor("float16", bits, dims);
  (tensor as unknown as { cpuData: Uint16Array }).cpuData = bits;
  return tensor;
}
