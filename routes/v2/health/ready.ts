/** `GET /v2/health/ready`: the Open Inference Protocol's readiness probe. */
import { z } from "zod";
import type { Handlers, RouteConfig } from "@/server/http/context.ts";
import { HttpError } from "@/server/http/http_error.ts";

/** A read. */
export const config: RouteConfig = {
  summary: "Open Inference Protocol: the server takes inference requests (models load on demand)",
  auth: "read",
  responses: { GET: { 200: z.object({ live: z.boolean(), ready: z.boolean() }) } },
};

/**
 * Answers 200 `{live, ready: true}` until the service begins to stop, then 503: every
 * model in the catalog can be served (one not loaded loads on its first request).
 */
export const handler: Handlers = {
  GET: (c) => {
    if (c.var.services.shutdown.aborted) {
      throw new HttpError(503, "stopping", "The service is stopping and takes no new requests");
    }
    return c.json({ live: true, ready: true });
  },
};
