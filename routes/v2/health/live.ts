/** `GET /v2/health/live`: the Open Inference Protocol's liveness probe. */
import { z } from "zod";
import type { Handlers, RouteConfig } from "@/server/http/context.ts";

/** A read. */
export const config: RouteConfig = {
  summary: "Open Inference Protocol: the server answers requests",
  auth: "read",
  responses: { GET: { 200: z.object({ live: z.boolean() }) } },
};

/** Answers 200 `{live: true}` while the service answers at all. */
export const handler: Handlers = {
  GET: (c) => c.json({ live: true }),
};
