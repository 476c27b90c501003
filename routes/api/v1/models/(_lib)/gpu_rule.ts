/**
 * The one answer for a move asked to end on the GPU (`load {"device":"gpu"}`, `rehydrate`)
 * that does not: 409 `no_gpu` whichever the reason — no usable GPU (nothing moved), a
 * failed GPU/CPU parity check, or no room with `onInsufficientVram: "cpu"` (the model is
 * loaded on the CPU and serves there) — and the message says why and where the model is.
 * @module
 */
import type { ModelRow } from "@/core/types.ts";
import { HttpError } from "@/server/http/http_error.ts";

/** 409 `no_gpu` before anything moves: no GPU is usable. */
export function noGpuUsable(id: string, why: string): HttpError {
  return new HttpError(
    409,
    "no_gpu",
    `"${id}" is not on the GPU: no GPU is usable (${why}); nothing was moved. ` +
      `Ask for device "cpu" to load it there.`,
  );
}

/** `row` when the model ended on the GPU; else the 409 `no_gpu` that says where it is and why. */
export function requireOnGpu(row: ModelRow): ModelRow {
  if (row.placement === "gpu") return row;
  const why = row.gpuMismatch
    ? `its GPU and CPU outputs disagree (max error ${
      row.gpuMismatch.maxAbsError.toPrecision(3)
    } > ${row.gpuMismatch.tolerance}), so the parity policy keeps it on the CPU`
    : row.cpuReason ?? "the placement policy put it there";
  const where = row.placement === "cpu"
    ? "it is loaded on the CPU and serves requests there"
    : "it is not loaded";
  throw new HttpError(
    409,
    "no_gpu",
    `"${row.id}" is not on the GPU: ${why}; ${where}. Ask for device "cpu" to load it on the ` +
      `CPU without this answer.`,
  );
}
