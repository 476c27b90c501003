/**
 * `GET /api/openapi.json`: the OpenAPI document, generated from the routes' configs for
 * the running service's settings (which operations the token guards follows its access rules).
 */
import { z } from "zod";
import type { Handlers, RouteConfig, Services } from "@/server/http/context.ts";
import { buildOpenApi } from "@/server/http/openapi.ts";

/** A read; answers the document. */
export const config: RouteConfig = {
  summary: "This document",
  auth: "read",
  responses: {
    GET: {
      200: z.object({
        openapi: z.string(),
        info: z.object({ title: z.string(), version: z.string() }),
        paths: z.record(z.string(), z.record(z.string(), z.unknown())),
      }).loose(),
    },
  },
};

const cache = new WeakMap<Services, Record<string, unknown>>();

/** Answers the document (built once per service, on first request). */
export const handler: Handlers = {
  GET: (c) => {
    const services = c.var.services;
    let doc = cache.get(services);
    if (!doc) {
      doc = buildOpenApi(c.var.routes, "0.1.0", services.config);
      cache.set(services, doc);
    }
    return c.json(doc);
  },
};
