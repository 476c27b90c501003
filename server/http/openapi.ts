/**
 * The OpenAPI 3.1 document, generated from the routes' configs: the same zod schemas
 * that validate requests, the response schemas tests check real answers against, and
 * the token rule the middleware applies, so the document cannot drift from the server.
 * @module
 */
import { PRIORITY_HEADER } from "./priority.ts";
import { PRIORITIES } from "../../core/types.ts";
import { z } from "zod";
import type { Config } from "../../core/config.ts";
import { tokenGuards } from "./auth.ts";
import type { RouteEntry } from "./context.ts";
import { errorShapeOf } from "./http_error.ts";
import { errorBodySchema, oipErrorBodySchema } from "./schemas.ts";

/**
 * A zod schema as JSON Schema (what it accepts for requests, what it gives for responses).
 * A typed-array check (`z.instanceof`: a value the body parser lifts, server/http/json_body.ts)
 * matches no JSON value, so it is written as `{not: {}}`, not as "anything".
 */
function jsonSchema(schema: z.ZodType, io: "input" | "output"): Record<string, unknown> {
  const { $schema: _, ...rest } = z.toJSONSchema(schema, {
    io,
    unrepresentable: "any",
    override: (ctx) => {
      if (ctx.zodSchema._zod.def.type === "custom") ctx.jsonSchema.not = {};
    },
  });
  return rest;
}

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

/**
 * Builds the document for `routes` as `config` runs them: an operation carries
 * `security` when the token guards it under the running access settings (the
 * middleware's own rule); the token is asked for only when the service has one.
 */
export function buildOpenApi(
  routes: readonly RouteEntry[],
  version: string,
  config: Config,
): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  const headroomErrorSchema = jsonSchema(errorBodySchema, "output");
  const oipErrorSchema = jsonSchema(oipErrorBodySchema, "output");
  for (const [path, handlers, options] of routes) {
    const params = [...path.matchAll(/:([A-Za-z_]+)/g)].map((m) => ({
      name: m[1],
      in: "path",
      required: true,
      schema: { type: "string" },
    }));
    const item: Record<string, unknown> = {};
    const errorSchema = errorShapeOf(path) === "oip" ? oipErrorSchema : headroomErrorSchema;
    for (const method of Object.keys(handlers)) {
      const parameters: Array<Record<string, unknown>> = [...params];
      if (options.query) {
        const query = typeof options.query === "function" ? options.query(config) : options.query;
        const schema = jsonSchema(query, "input") as {
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
      if (options.priority) {
        parameters.push({
          name: PRIORITY_HEADER,
          in: "header",
          required: false,
          description:
            "Where the request goes in its model's queue (default: the model's own, else normal)",
          schema: { type: "string", enum: [...PRIORITIES] },
        });
      }
      const produces = options.produces ?? "json";
      const declared = options.responses?.[method as keyof typeof options.responses] ?? {};
      const responses: Record<string, unknown> = {};
      if (produces === "websocket") {
        responses["101"] = { description: "Switching to the WebSocket protocol" };
      } else if (!Object.keys(declared).some((status) => status.startsWith("2"))) {
        responses["200"] = {
          description: "Success",
          ...(MEDIA[produces] ? { content: { [MEDIA[produces]]: {} } } : {}),
        };
      }
      for (const [status, schema] of Object.entries(declared)) {
        if (!schema) continue;
        const success = status.startsWith("2");
        // JSON bodies; a route that answers another type (Prometheus text) offers JSON too.
        const content: Record<string, unknown> = success && produces !== "json" && MEDIA[produces]
          ? { [MEDIA[produces]]: {} }
          : {};
        content["application/json"] = { schema: jsonSchema(schema, "output") };
        responses[status] = { description: success ? "Success" : "Refused", content };
      }
      responses["4XX"] = {
        description: "The request is wrong; the message names the field",
        content: { "application/json": { schema: errorSchema } },
      };
      responses["5XX"] = {
        description: "The service failed; the message says what to do (no internals)",
        content: { "application/json": { schema: errorSchema } },
      };
      const operation: Record<string, unknown> = {
        summary: options.summary,
        ...(parameters.length ? { parameters } : {}),
        responses,
      };
      if (tokenGuards(method, options.auth, config)) operation.security = [{ bearer: [] }];
      if (method !== "GET" && options.body) {
        const schema = jsonSchema(options.body, "input");
        operation.requestBody = {
          required: false,
          content: {
            "application/json": { schema },
            // The binary tensor data extension: the JSON header, then the tensors' bytes.
            ...(options.binary
              ? { "application/octet-stream": { schema: { type: "string", format: "binary" } } }
              : {}),
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
        "Runs ONNX pipelines on one machine and keeps the GPU from running out of memory. " +
        "Operations with `security` need `Authorization: Bearer <token>` when the service " +
        "runs with HEADROOM_TOKEN.",
    },
    components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
    paths,
  };
}
