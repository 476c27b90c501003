/**
 * What the Open Inference Protocol says about the server and its models, from the
 * Scheduler's rows: server metadata (with the extensions Headroom implements), model
 * metadata (datatype names, -1 for a free dimension), readiness, the one version each
 * model has, and Triton's repository index.
 * @module
 */
import { z } from "zod";
import type { ModelRow, PipelineState } from "../../core/types.ts";
import { isTensorType } from "../../core/pipelines/protocol.ts";
import type { Catalog } from "../../core/models/catalog.ts";
import { readModelSignature } from "../../core/models/signature.ts";
import { HttpError } from "../http/http_error.ts";
import { OIP_DATATYPES } from "./datatypes.ts";

/** The server's version in `GET /v2`. */
export const SERVER_VERSION = "0.1.0";

/** The protocol extensions Headroom implements, as Triton names them in `GET /v2`. */
export const OIP_EXTENSIONS = ["binary_tensor_data", "model_repository"] as const;

/** The one version every model has: Headroom's models file names no versions. */
export const MODEL_VERSION = "1";

/** `$metadata_server_response`. */
export const serverMetadataSchema = z.object({
  name: z.string(),
  version: z.string(),
  extensions: z.array(z.string()),
});

/** `$metadata_tensor`. */
const metadataTensorSchema = z.object({
  name: z.string(),
  datatype: z.string(),
  shape: z.array(z.number().int()),
});

/** `$metadata_model_response`. */
export const modelMetadataSchema = z.object({
  name: z.string(),
  versions: z.array(z.string()),
  platform: z.string(),
  inputs: z.array(metadataTensorSchema),
  outputs: z.array(metadataTensorSchema),
});

/** `$ready_model_response`. */
export const modelReadySchema = z.object({ name: z.string(), ready: z.boolean() });

/** One entry of `$repository_index_response`. */
export const repositoryEntrySchema = z.object({
  name: z.string(),
  version: z.string(),
  state: z.enum(["READY", "LOADING", "UNLOADING", "UNAVAILABLE"]),
  reason: z.string(),
});

/** The server metadata `GET /v2` answers. */
export function serverMetadata(): z.infer<typeof serverMetadataSchema> {
  return { name: "headroom", version: SERVER_VERSION, extensions: [...OIP_EXTENSIONS] };
}

/** Refuses (404) a version other than {@link MODEL_VERSION}; `undefined` (no version in the URL) passes. */
export function checkVersion(model: string, version: string | undefined): void {
  if (version !== undefined && version !== MODEL_VERSION) {
    throw new HttpError(
      404,
      "unknown_version",
      `model "${model}" has no version "${version}": Headroom serves version "${MODEL_VERSION}" only`,
    );
  }
}

/** Ready for inference now: a session is open on the GPU or the CPU. */
export function isReady(row: ModelRow): boolean {
  return row.state === "gpu" || row.state === "cpu";
}

type TensorRow = ModelRow["inputs"][number];

function metadataTensor(tensor: TensorRow): z.infer<typeof metadataTensorSchema> {
  return {
    name: tensor.name,
    // A type the session does not say (a non-tensor value) has no protocol name.
    datatype: tensor.type && isTensorType(tensor.type) ? OIP_DATATYPES[tensor.type] : "",
    shape: tensor.dims.map((d) => (typeof d === "number" && d >= 0 ? d : -1)),
  };
}

/**
 * A model's inputs and outputs: as the loaded session reports them, else as the models
 * file states them, else as its ONNX file declares them (read without loading it; empty
 * while the file is not there yet, like a synthetic model not generated yet).
 */
export async function modelSignature(
  row: ModelRow,
  catalog: Catalog,
): Promise<Pick<ModelRow, "inputs" | "outputs">> {
  const { inputs, outputs } = row;
  const path = catalog.find(row.id)?.path;
  if (inputs.length > 0 || outputs.length > 0 || !path) return { inputs, outputs };
  return await readModelSignature(path).catch(() => ({ inputs, outputs }));
}

/**
 * The model metadata of a row: its inputs and outputs as the loaded session reports
 * them, else as the models file states them, else as the model's ONNX file declares them
 * (read without loading it; empty while the file is not there yet, like a synthetic model
 * not generated yet).
 */
export async function modelMetadata(
  row: ModelRow,
  catalog: Catalog,
): Promise<z.infer<typeof modelMetadataSchema>> {
  const { inputs, outputs } = await modelSignature(row, catalog);
  return {
    name: row.id,
    versions: [MODEL_VERSION],
    platform: "onnx_onnxv1",
    inputs: inputs.map(metadataTensor),
    outputs: outputs.map(metadataTensor),
  };
}

const INDEX_STATES: Record<PipelineState, z.infer<typeof repositoryEntrySchema>["state"]> = {
  gpu: "READY",
  cpu: "READY",
  loading: "LOADING",
  rehydrating: "LOADING",
  offloading: "LOADING",
  unloaded: "UNAVAILABLE",
  failed: "UNAVAILABLE",
};

/** One repository index entry: READY on the GPU or the CPU, with where and why in `reason`. */
export function repositoryEntry(row: ModelRow): z.infer<typeof repositoryEntrySchema> {
  const reasons: Record<PipelineState, string> = {
    gpu: "on the GPU",
    cpu: `on the CPU${row.cpuReason ? `: ${row.cpuReason}` : ""}`,
    loading: "loading",
    rehydrating: "moving to the GPU",
    offloading: "moving to the CPU",
    unloaded: "unloaded; a load or an inference request loads it",
    failed: "the last load failed; the next use retries",
  };
  return {
    name: row.id,
    version: MODEL_VERSION,
    state: INDEX_STATES[row.state],
    reason: reasons[row.state],
  };
}
