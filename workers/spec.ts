/**
 * Builds a {@link PipelineSpec} for a model file: scans it for external data (so the
 * worker gets read access to those files and knows the model's bytes) and fills the
 * engine settings with their defaults. For tools and tests that start workers directly;
 * the PipelineManager builds its specs from the service's config.
 * @module
 */
import { scanOnnxFile } from "../core/models/external_data.ts";
import type { PipelineSpec } from "../core/pipelines/protocol.ts";

/** The fields a caller must give; the rest have defaults. */
export type SpecFields = Pick<PipelineSpec, "modelId" | "modelPath"> & Partial<PipelineSpec>;

/** A spec for `fields.modelPath`: wasm CPU engine, one thread, unless `fields` says otherwise. */
export async function pipelineSpec(fields: SpecFields): Promise<PipelineSpec> {
  const info = await scanOnnxFile(fields.modelPath);
  return {
    pluginUrl: null,
    assets: {},
    numThreads: 1,
    cpuEngine: "wasm",
    ortNodeDir: null,
    cpuThreads: 1,
    parityAtLoadMaxBytes: 256 * 2 ** 20,
    externalData: info.externalData.map(({ location, path }) => ({ location, path })),
    modelBytes: info.totalBytes,
    ...fields,
  };
}
