/**
 * What each engine can hold, checked before a session is created so that a model too
 * big for it is refused with the limit and the fix (a 422), never an engine's own
 * message in a 500. Measured on onnxruntime 1.30 (see FACTS.md): protobuf stops at
 * 2 GiB for a single `.onnx`; the wasm EP copies weights into a 4 GiB wasm32 heap and
 * failed with std::bad_alloc at 3 GiB, so it takes models up to 1.5 GiB.
 * @module
 */
import { type OnnxFileInfo, PROTOBUF_LIMIT_BYTES } from "./external_data.ts";

/** The largest model (graph + external data) the wasm CPU engine is given. */
export const WASM_MAX_MODEL_BYTES = 1.5 * 2 ** 30;

/** The engines a session can run on. */
export type LimitEngine = "native" | "wasm" | "webgpu";

const gib = (bytes: number) => `${(bytes / 2 ** 30).toFixed(2)} GiB`;

/**
 * Why `engine` cannot hold the model described by `info`, or null when it can. The
 * message names the limit and the fix.
 */
export function engineLimit(info: OnnxFileInfo, engine: LimitEngine): string | null {
  if (info.graphBytes > PROTOBUF_LIMIT_BYTES) {
    return `${info.path} is ${gib(info.graphBytes)} in one protobuf file: onnxruntime cannot ` +
      "read a single .onnx of 2 GiB or more. Save it with external data, e.g. " +
      "onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True)";
  }
  if (engine === "wasm" && info.totalBytes > WASM_MAX_MODEL_BYTES) {
    return `${info.path} with its external data is ${gib(info.totalBytes)}: the wasm CPU ` +
      `engine holds models up to ${gib(WASM_MAX_MODEL_BYTES)} (a 4 GiB wasm32 heap). Use the ` +
      "native engine (HEADROOM_CPU_ENGINE=auto or native, with onnxruntime-node installed) " +
      "or load it on the GPU";
  }
  return null;
}
