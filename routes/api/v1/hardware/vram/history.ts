/** `GET /api/v1/hardware/vram/history?seconds=&points=`: the monitor's ring buffer, downsampled. */
import { z } from "zod";
import type { Handlers, RouteConfig } from "@/server/http/context.ts";
import { vramSampleSchema } from "@/server/http/schemas.ts";

const DEFAULT_SECONDS = 600;
const DEFAULT_POINTS = 300;
const MAX_POINTS = 5000;

/** The query string, for a history of `maxSeconds`. */
export function querySchema(maxSeconds: number) {
  return z.object({
    seconds: z.coerce.number().int("must be a whole number of seconds")
      .min(1, "must be at least 1").max(
        maxSeconds,
        `must be at most ${maxSeconds} (the history kept)`,
      )
      .default(Math.min(DEFAULT_SECONDS, maxSeconds)),
    points: z.coerce.number().int("must be a whole number").min(1, "must be at least 1")
      .max(MAX_POINTS, `must be at most ${MAX_POINTS}`).default(DEFAULT_POINTS),
  });
}

/** A read; the query's limit is the history this service keeps. */
export const config = {
  summary: "The sample history, downsampled (each point keeps its run's peak)",
  auth: "read",
  query: (service) => querySchema(Math.ceil(service.historyMs / 1000)),
  responses: {
    GET: {
      200: z.object({
        seconds: z.number(),
        points: z.number(),
        samples: z.array(vramSampleSchema),
      }),
    },
  },
} satisfies RouteConfig;

/** Answers `{seconds, points, samples}`, oldest sample first. */
export const handler: Handlers<"/api/v1/hardware/vram/history", typeof config> = {
  GET: (c) => {
    const query = c.req.valid("query");
    const samples = c.var.services.monitor.history(query.seconds, query.points);
    return c.json({ seconds: query.seconds, points: samples.length, samples });
  },
};
