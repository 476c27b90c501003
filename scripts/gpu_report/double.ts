/**
 * The driver double's stand-in for what a real driver does on its own: when the NVML
 * library in use is tests/fake_gpu.c (it exports `fake_set_graphics_process`), the
 * report copies the bytes this process's WebGPU sessions hold (the workers' tracked
 * buffers) into the double's graphics list under this pid, every `everyMs`, the way
 * NVIDIA's driver lists a Vulkan process. On a real driver this is null and nothing is
 * copied: the driver's own figures are the measurement.
 * @module
 */
import { NVML_LIBRARY_ENV } from "../../ffi/nvml.ts";

const symbols = {
  /** int fake_set_graphics_process(unsigned int dev, unsigned int pid, unsigned long long bytes) */
  fake_set_graphics_process: { parameters: ["u32", "u32", "u64"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

/** A running copy of tracked bytes into the double; `stop()` ends it and clears the row. */
export interface VulkanMirror {
  /** Copies the current figure now (after a load, before reading the driver). */
  sync(): void;
  stop(): void;
}

/** Starts the mirror when NVML is the driver double; null on a real driver. */
export function mirrorIntoDouble(trackedBytes: () => number, everyMs = 20): VulkanMirror | null {
  const path = Deno.env.get(NVML_LIBRARY_ENV);
  if (!path) return null;
  let lib: Deno.DynamicLibrary<typeof symbols>;
  try {
    lib = Deno.dlopen(path, symbols);
  } catch {
    return null; // a real libnvidia-ml named by path: no such symbol
  }
  const sync = () => {
    lib.symbols.fake_set_graphics_process(0, Deno.pid, BigInt(Math.max(0, trackedBytes())));
  };
  sync();
  const timer = setInterval(sync, everyMs);
  return {
    sync,
    stop() {
      clearInterval(timer);
      lib.symbols.fake_set_graphics_process(0, Deno.pid, 0n);
      lib.close();
    },
  };
}
