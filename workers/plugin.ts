/**
 * The contract of a pipeline plugin: a module that runs inside a pipeline worker and
 * turns a request's own input (an image, audio samples) into tensors for the worker's
 * one session, and that session's outputs back into an answer (boxes, text, speech
 * probabilities). A plain model with tensors in and out needs no plugin.
 *
 * A plugin module's default export satisfies {@link PipelinePlugin}.
 * @module
 */
import type { WireTensor } from "../core/pipelines/protocol.ts";

/** Runs the worker's session once; the plugin may call it many times per request. */
export type InferFn = (feeds: Record<string, WireTensor>) => Promise<Record<string, WireTensor>>;

/** What a plugin gets once, after the worker starts and before the first request. */
export interface PluginInit {
  /** Catalog id of the model the worker serves. */
  modelId: string;
  /** The spec's assets, already read as bytes (the worker has read access to them). */
  assets: Record<string, Uint8Array>;
}

/** A pipeline plugin. Its methods run inside the worker; inputs and outputs must be structured-cloneable. */
export interface PipelinePlugin<Input = unknown, Output = unknown> {
  /** Catalog model ids this plugin serves (for example ["ocr-det"]). */
  readonly models: readonly string[];
  /** Optional one-time set-up (parse a key list, build tables). */
  init?(init: PluginInit): void | Promise<void>;
  /**
   * Checks and converts a request's input, runs the session through `infer`, and
   * post-processes. Throw a {@link PluginInputError} for input the caller got wrong.
   */
  process(input: Input, infer: InferFn): Promise<Output>;
  /** One representative input, used by the GPU/CPU parity check. */
  probe?(): Input;
}

/** Thrown by a plugin when the caller's input is wrong; becomes a 400 with this message. */
export class PluginInputError extends Error {
  override name = "PluginInputError";
}
