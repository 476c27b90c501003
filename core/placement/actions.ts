/**
 * Which actions a model allows where it is now: the rule the dashboard's buttons follow,
 * sent in every `ModelRow` so the page keeps no copy of it.
 * @module
 */
import type { ModelAction, ModelReport } from "../types.ts";

/**
 * The actions `model` allows, in the order the dashboard shows them. `gpu`: a GPU is
 * there (a lost one too: it may come back, and a load then says why it cannot). Unloaded:
 * load on the GPU or the CPU. On the CPU: to the GPU, unless the parity check found the
 * outputs disagree (it stays on the CPU). On the GPU: offload. Loaded: unload. Always:
 * pin or unpin.
 *
 * @example
 * ```ts
 * modelActions({ placement: "cpu", pinned: false, gpuMismatch: null }, true);
 * // ["load-gpu", "unload", "pin"]
 * ```
 */
export function modelActions(
  model: Pick<ModelReport, "placement" | "pinned" | "gpuMismatch">,
  gpu: boolean,
): ModelAction[] {
  const actions: ModelAction[] = [];
  if (model.placement === "none") {
    if (gpu) actions.push("load-gpu");
    actions.push("load-cpu");
  }
  if (model.placement === "cpu" && gpu && !model.gpuMismatch) actions.push("load-gpu");
  if (model.placement === "gpu") actions.push("offload");
  if (model.placement !== "none") actions.push("unload");
  actions.push(model.pinned ? "unpin" : "pin");
  return actions;
}
