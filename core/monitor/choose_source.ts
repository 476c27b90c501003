/**
 * Picks the best VRAM source at start: NVML → CUDA runtime → a WebGPU adapter with a
 * budget → none, and keeps the reason each better one was passed over, so the API and
 * the dashboard can say why no GPU is visible.
 * @module
 */
import type { Config } from "../config.ts";
import { openNvml } from "../../ffi/nvml.ts";
import { openCudart } from "../../ffi/cudart.ts";
import { NvmlSource } from "./nvml_source.ts";
import { CudartSource } from "./cudart_source.ts";
import { findAdapter, WebGpuSource } from "./webgpu_source.ts";
import { NoGpuSource, type SourceChoice } from "./source.ts";

/** The parts of the config the choice depends on. */
export type SourceConfig = Pick<Config, "gpu" | "vramBudget" | "nvmlLibrary" | "cudartLibrary">;

/**
 * Chooses a source per `config.gpu`. Never throws for a missing driver: that is a
 * normal state, reported as the reason. `trackedBytes` feeds the WebGPU source.
 */
export async function chooseSource(
  config: SourceConfig,
  trackedBytes: () => number,
): Promise<SourceChoice> {
  const passedOver: string[] = [];
  const mode = config.gpu;

  if (mode === "auto" || mode === "nvidia") {
    try {
      const source = new NvmlSource(openNvml(config.nvmlLibrary ?? undefined));
      return { source, reason: null };
    } catch (error) {
      passedOver.push(message(error));
    }
    try {
      const source = new CudartSource(openCudart(config.cudartLibrary ?? undefined));
      return { source, reason: passedOver.join("; ") };
    } catch (error) {
      passedOver.push(`CUDA runtime: ${message(error)}`);
    }
  }

  if (mode === "auto" || mode === "webgpu" || mode === "software") {
    const budget = config.vramBudget;
    if (budget?.kind !== "bytes") {
      passedOver.push(
        "WebGPU: no budget in bytes configured (set HEADROOM_VRAM_BUDGET, like 4GiB, to use a WebGPU adapter)",
      );
    } else {
      const adapter = await findAdapter().catch(() => null);
      if (!adapter) passedOver.push("WebGPU: no adapter found");
      else if (adapter.software && mode !== "software") {
        passedOver.push(
          `WebGPU: only a software adapter (${adapter.name}); use HEADROOM_GPU=software to run on it`,
        );
      } else {
        const source = new WebGpuSource(adapter, budget.bytes, trackedBytes);
        return { source, reason: passedOver.length ? passedOver.join("; ") : null };
      }
    }
  }

  if (mode === "cpu") passedOver.push("HEADROOM_GPU=cpu: GPU use is turned off");
  return { source: new NoGpuSource(), reason: passedOver.join("; ") };
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
