/**
 * The checks a route's `config` declares, run by the app before the handler (Hono's
 * `validator` middleware, built from the config): path parameters that name a model,
 * the query string and the JSON body. A bad value becomes a 400 whose message names the
 * field and says what was expected; the handler reads what passed with
 * `c.req.valid("query")` and `c.req.valid("json")` and never parses the request itself.
 * @module
 */
import type { MiddlewareHandler } from "hono";
import type { z } from "zod";
import { HttpError } from "./http_error.ts";
import { describeIssues } from "../../core/describe_issues.ts";
import type { AppEnv, RouteConfig, Services } from "./context.ts";

/** Parses the query string with `schema`; throws a 400 HttpError naming the bad parameter. */
function parseQuery<T extends z.ZodType>(query: Record<string, string>, schema: T): z.output<T> {
  const result = schema.safeParse(query);
  if (!result.success) {
    throw new HttpError(400, "bad_query", describeIssues(result.error, "query parameter"));
  }
  return result.data;
}

/** Bytes of a large body read between two turns of the event loop. */
const YIELD_EVERY_BYTES = 4 * 2 ** 20;

/** Commas (0x2c) in `bytes`: a tight loop, about a nanosecond a byte. */
function countCommas(bytes: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < bytes.length; i++) if (bytes[i] === 0x2c) n++;
  return n;
}

/**
 * Reads a body's bytes as they stream in, counting its commas (each array element and object
 * member past the first takes one), and refuses (413) once they pass `maxElements`: a body
 * of too many numbers is refused while it arrives, before JSON.parse holds the thread for
 * seconds (on main a 128 MiB infer body answered 413 after 9 s, health stalled 8.8 s).
 */
async function readCounted(request: Request, maxElements: number | undefined): Promise<string> {
  if (maxElements === undefined || request.body === null) return await request.text();
  const chunks: Uint8Array[] = [];
  let commas = 0;
  let sinceYield = 0;
  for await (const chunk of request.body) {
    commas += countCommas(chunk);
    // Let other requests (health, pollers) in between: a large body is read in slices.
    sinceYield += chunk.length;
    if (sinceYield >= YIELD_EVERY_BYTES) {
      sinceYield = 0;
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    if (commas >= maxElements) {
      await request.body.cancel().catch(() => {});
      throw new HttpError(
        413,
        "too_large",
        `The body holds more than ${maxElements} values (counted while it arrived); send ` +
          `fewer elements per request`,
      );
    }
    chunks.push(chunk);
  }
  const bytes = new Uint8Array(chunks.reduce((n, part) => n + part.length, 0));
  let offset = 0;
  for (const part of chunks) {
    bytes.set(part, offset);
    offset += part.length;
  }
  return new TextDecoder().decode(bytes);
}

/** Parses a JSON body's text with `schema` (empty is `{}`); throws a 400 HttpError naming the bad field. */
function parseJsonBody<T extends z.ZodType>(text: string, schema: T): z.output<T> {
  let body: unknown;
  try {
    body = text.trim() === "" ? {} : JSON.parse(text);
  } catch (error) {
    throw new HttpError(400, "bad_json", `The body is not valid JSON: ${(error as Error).message}`);
  }
  const result = schema.safeParse(body);
  if (!result.success) throw new HttpError(400, "bad_body", describeIssues(result.error, "field"));
  return result.data;
}

/**
 * The middleware that enforces `config` on `method` for the running `services`, in this
 * order: each path parameter that names a model exists (`scheduler.require`: the
 * unknown-model 404 before a body is read), the query string, then the JSON body (not
 * on GET; with `config.maxElements`, counted while it streams in). Null when the config asks for none of them on this method.
 */
export function requestValidator(
  method: string,
  config: RouteConfig,
  services: Services,
): MiddlewareHandler<AppEnv> | null {
  const models = Object.entries(config.params ?? {})
    .filter(([, names]) => names === "model").map(([name]) => name);
  // A query schema that depends on the settings is built once: they do not change.
  const query = typeof config.query === "function" ? config.query(services.config) : config.query;
  // A binary body (JSON header + raw tensor bytes) is read by its handler, never as JSON.
  const body = method === "GET" || config.binary ? undefined : config.body;
  if (models.length === 0 && !query && !body) return null;
  return async (c, next) => {
    for (const name of models) services.scheduler.require(c.req.param(name) ?? "");
    // What `c.req.valid("query" | "json")` answers the handler (typed by its config there).
    if (query) c.req.addValidatedData("query", parseQuery(c.req.query(), query) as object);
    if (body) {
      const text = await readCounted(c.req.raw, config.maxElements);
      c.req.addValidatedData("json", parseJsonBody(text, body) as object);
    }
    await next();
  };
}
