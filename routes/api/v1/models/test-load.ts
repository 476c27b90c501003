/**
 * `POST /api/v1/models/test-load` with `{"models"?: [...], "device"?: "gpu" | "cpu"}`:
 * loads every model (or the listed ones) one at a time, in isolation, measures each,
 * and streams progress as NDJSON: `started`, `measured`, `error` per model, then `done`.
 * 409 while another test load runs. Mutating: needs the token when one is set.
 */
import { z } from "zod";
import { stream } from "hono/streaming";
import type { Handlers } from "../../../../core/http/context.ts";
import { HttpError } from "../../../../core/http/errors.ts";
import { parseJsonBody } from "../../../../core/http/validate.ts";
import { runTestLoad, testLoadRunning } from "../../../../core/pipelines/test_load.ts";

/** The request body. */
export const bodySchema = z.object({
  models: z.array(z.string().min(1)).min(1, "must name at least one model").optional(),
  device: z.enum(["gpu", "cpu"], { error: 'must be "gpu" or "cpu"' }).optional(),
}).strict();

/** Streams the test load's progress. */
export const handler: Handlers = {
  POST: async (c) => {
    const input = await parseJsonBody(c, bodySchema);
    const { manager } = c.var.services;
    const ids = input.models ?? manager.list().map((m) => m.id);
    for (const id of ids) manager.get(id);
    if (testLoadRunning()) {
      throw new HttpError(409, "busy", "A test load is already running; wait for it to finish");
    }
    c.header("content-type", "application/x-ndjson; charset=utf-8");
    c.header("cache-control", "no-store");
    return stream(c, async (out) => {
      await runTestLoad(
        c.var.services,
        ids,
        input.device ?? manager.defaultDevice,
        async (event) => {
          if (!out.aborted) await out.write(JSON.stringify(event) + "\n");
        },
      );
    });
  },
};
