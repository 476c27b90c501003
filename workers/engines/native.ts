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
 * Up to this many model bytes the native session pre-packs its MatMul weights; above, it
 * maps them from the file. Pre-packed, every batch size runs one GEMM kernel, so a row's
 * output is bit-for-bit the same alone or in a batch, and it is faster (measured on a
 * 64 MiB generated model, 2 threads, same run: 4.1 vs 6.4 ms at batch 1, 2,278 vs 1,045
 * rows/s at batch 16); unpacked, a batch of one takes onnxruntime's single-row kernel
 * (outputs differ by ~1e-6 from the same row in a batch). Pre-packing copies the weights at
 * load (~1 s per GiB, a second copy while it works), which a big model should not pay.
 */
export const NATIVE_PREPACK_MAX_BYTES = 256 * 2 ** 20;

/**
 * Creates a CPU session reading `modelPath` (and its external data beside it) directly.
 * A model of `modelBytes` above {@link NATIVE_PREPACK_MAX_BYTES} is not pre-packed: without
 * it, onnxruntime maps the page-aligned external data straight from the file (create ~10 ms
 * for 1 GiB, the pages shared with the page cache), and a batch-1 run measured the same
 * (41–53 ms either way).
 */
export async function createNativeSession(
  ort: NativeOrt,
  modelPath: string,
  threads: number,
  modelBytes: number,
): Promise<OrtModule.InferenceSession> {
  const prepack = modelBytes <= NATIVE_PREPACK_MAX_BYTES;
  return await ort.InferenceSession.create(modelPath, {
    executionProviders: ["cpu"],
    intraOpNumThreads: Math.max(1, threads),
    interOpNumThreads: 1,
    extra: {
      session: {
        disable_prepacking: prepack ? "0" : "1",
        // Intra-op threads spin a short while (20 µs) for the next piece of a run before they
        // sleep, and stop at once when the run returns: long enough to skip a wake-up between
        // a run's operators, short enough never to hold a core the main thread serves HTTP
        // on. The figures for this choice (against never spinning, and against onnxruntime's
        // unbounded default) are in docs/benchmarks.md, "Engine settings".
        "intra_op.allow_spinning": "1",
        "intra_op.spin_duration_us": "20",
        force_spinning_stop: "1",
      },
    },
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
