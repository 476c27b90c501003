/**
 * `POST /api/v1/models/test-load` with `{"models"?: [...], "device"?: "gpu" | "cpu"}`:
 * loads every model (or the listed ones) one at a time, in isolation, measures each,
 * and streams progress as NDJSON: `started`, `measured`, `error` per model, then `done`.
 * It runs as an exclusive section: requests and switches wait until it ends, so each figure
 * is of one model alone. 409 while another test load runs. Mutating: needs the token when
 * one is set.
 */
import { z } from "zod";
import { stream } from "hono/streaming";
import type { Handlers, RouteConfig } from "@/server/http/context.ts";
import { HttpError } from "@/server/http/http_error.ts";

/** The request body. */
export const bodySchema = z.object({
  models: z.array(z.string().min(1)).min(1, "must name at least one model").optional(),
  device: z.enum(["gpu", "cpu"], { error: 'must be "gpu" or "cpu"' }).optional(),
}).strict();

/** Mutating; answers NDJSON progress. */
export const config = {
  summary: "Load each model alone, measure it, stream progress as NDJSON",
  auth: "mutating",
  body: bodySchema,
  produces: "ndjson",
} satisfies RouteConfig;

/** Streams the test load's progress. */
export const handler: Handlers<"/api/v1/models/test-load", typeof config> = {
  POST: (c) => {
    const input = c.req.valid("json");
    const { scheduler } = c.var.services;
    const ids = input.models ?? scheduler.list().map((m) => m.id);
    for (const id of ids) scheduler.require(id);
    if (scheduler.testLoadRunning) {
      throw new HttpError(409, "busy", "A test load is already running; wait for it to finish");
    }
    c.header("content-type", "application/x-ndjson; charset=utf-8");
    c.header("cache-control", "no-store");
    return stream(c, async (out) => {
      await scheduler.testLoad(
        ids,
        input.device ?? scheduler.defaultDevice,
        async (event) => {
          if (!out.aborted) await out.write(JSON.stringify(event) + "\n");
        },
      );
    });
  },
};
