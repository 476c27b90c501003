/**
 * The OpenAPI 3.1 document, generated from the route manifest and the same zod schemas
 * that validate requests, so the document cannot drift from what the server accepts.
 * @module
 */
import { z } from "zod";
import type { RouteEntry } from "./context.ts";

const ERROR_SCHEMA = {
  type: "object",
  required: ["error"],
  properties: {
    error: {
      type: "object",
      required: ["code", "message"],
      properties: { code: { type: "string" }, message: { type: "string" } },
    },
  },
};

const MEDIA: Record<string, string> = {
  json: "application/json",
  sse: "text/event-stream",
  ndjson: "application/x-ndjson",
  prometheus: "text/plain; version=0.0.4",
  html: "text/html",
  asset: "application/octet-stream",
};

/** `/api/v1/models/:id` → `/api/v1/models/{id}`. */
export function openApiPath(path: string): string {
  return path.replace(/:([A-Za-z_]+)/g, "{$1}");
}

/** Builds the document for `routes`. */
export function buildOpenApi(
  routes: readonly RouteEntry[],
  version: string,
): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const [path, handlers, options] of routes) {
    const params = [...path.matchAll(/:([A-Za-z_]+)/g)].map((m) => ({
      name: m[1],
      in: "path",
      required: true,
      schema: { type: "string" },
    }));
    const item: Record<string, unknown> = {};
    for (const method of Object.keys(handlers)) {
      const parameters = [...params];
      if (options.query) {
        const schema = z.toJSONSchema(options.query, { io: "input", unrepresentable: "any" }) as {
          properties?: Record<string, unknown>;
          required?: string[];
        };
        for (const [name, property] of Object.entries(schema.properties ?? {})) {
          parameters.push({
            name,
            in: "query",
            required: schema.required?.includes(name) ?? false,
            schema: property as { type: string },
          });
        }
      }
      const produces = options.produces ?? "json";
      const operation: Record<string, unknown> = {
        summary: options.summary,
        ...(parameters.length ? { parameters } : {}),
        responses: {
          [produces === "websocket" ? "101" : "200"]: {
            description: produces === "websocket"
              ? "Switching to the WebSocket protocol"
              : "Success",
            ...(MEDIA[produces] ? { content: { [MEDIA[produces]]: {} } } : {}),
          },
          "4XX": {
            description: "The request is wrong; the message names the field",
            content: { "application/json": { schema: ERROR_SCHEMA } },
          },
        },
      };
      const needsToken = (options.mutating && method !== "GET") || options.infer;
      if (needsToken) operation.security = [{ bearer: [] }];
      if (method !== "GET" && options.body) {
        operation.requestBody = {
          required: false,
          content: {
            "application/json": {
              schema: z.toJSONSchema(options.body, { io: "input", unrepresentable: "any" }),
            },
          },
        };
      } else if (method !== "GET" && options.image) {
        operation.requestBody = {
          required: true,
          content: {
            "image/png": { schema: { type: "string", format: "binary" } },
            "image/jpeg": { schema: { type: "string", format: "binary" } },
            "multipart/form-data": {
              schema: {
                type: "object",
                properties: { image: { type: "string", format: "binary" } },
                required: ["image"],
              },
            },
          },
        };
      }
      item[method.toLowerCase()] = operation;
    }
    paths[openApiPath(path)] = item;
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "Headroom",
      version,
      description:
        "Runs ONNX pipelines on one machine and keeps the GPU from running out of memory.",
    },
    components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
    paths,
  };
}
