/**
 * The checks a route's `config` declares, run by the app before the handler (what Hono's
 * `validator` middleware does, built from the config): path parameters that name a model,
 * the query string and the JSON body. A bad value becomes a 400 whose message names the
 * field and says what was expected; the handler reads what passed with
 * `c.req.valid("query")` and `c.req.valid("json")` and never parses the request itself.
 * @module
 */
import type { Context } from "hono";
import type { z } from "zod";
import { HttpError } from "./http_error.ts";
import { describeIssues } from "../../core/describe_issues.ts";
import type { AppEnv, RouteConfig, Services } from "./context.ts";
import { type LiftPaths, parseJsonBytes } from "./json_body.ts";
import { OFF_THREAD_MIN_BYTES, parseJsonOffThread } from "./body_pool.ts";

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

/** The first block a body is copied into; each next one doubles, up to {@link BLOCK_MAX_BYTES}. */
const BLOCK_MIN_BYTES = 64 * 1024;
const BLOCK_MAX_BYTES = 4 * 2 ** 20;

/** Commas (0x2c) in `bytes`: a tight loop, about a nanosecond a byte. */
function countCommas(bytes: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < bytes.length; i++) if (bytes[i] === 0x2c) n++;
  return n;
}

/** The 413 for a body of more than `maxElements` values. */
function tooManyValues(maxElements: number): HttpError {
  return new HttpError(
    413,
    "too_large",
    `The body holds more than ${maxElements} values (counted while it arrived); send ` +
      `fewer elements per request`,
  );
}

/**
 * Reads a body's bytes as they stream in, copied into blocks of its own (so a large body's
 * blocks can move to a body worker; a stream's chunks may be views of a caller's buffer).
 * With `maxElements` it counts the body's commas (each array element and object member
 * past the first takes one) and refuses (413) once they pass it: a body of too many
 * numbers is refused while it arrives, before anything parses it (on main a 128 MiB infer
 * body answered 413 after 9 s, health stalled 8.8 s).
 */
async function readBlocks(
  request: Request,
  maxElements: number | undefined,
): Promise<{ parts: Uint8Array[]; size: number }> {
  const parts: Uint8Array[] = [];
  let block = new Uint8Array(0);
  let used = 0;
  let size = 0;
  let commas = 0;
  let sinceYield = 0;
  if (request.body === null) return { parts, size };
  for await (const chunk of request.body) {
    if (maxElements !== undefined) {
      commas += countCommas(chunk);
      if (commas >= maxElements) {
        await request.body.cancel().catch(() => {});
        throw tooManyValues(maxElements);
      }
    }
    for (let offset = 0; offset < chunk.length;) {
      if (used === block.length) {
        if (used > 0) parts.push(block);
        block = new Uint8Array(
          Math.min(BLOCK_MAX_BYTES, Math.max(BLOCK_MIN_BYTES, 2 * block.length)),
        );
        used = 0;
      }
      const n = Math.min(block.length - used, chunk.length - offset);
      block.set(chunk.subarray(offset, offset + n), used);
      used += n;
      offset += n;
    }
    size += chunk.length;
    // Let other requests (health, pollers) in between: a large body is read in slices.
    sinceYield += chunk.length;
    if (sinceYield >= YIELD_EVERY_BYTES) {
      sinceYield = 0;
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
  }
  if (used > 0) parts.push(block.subarray(0, used));
  return { parts, size };
}

/**
 * A JSON body's value: parsed here when small, in a body worker from
 * {@link OFF_THREAD_MIN_BYTES} on (the long values at `lift` converted the same on both
 * paths); a 400 naming the parser's complaint when it is not JSON.
 */
async function parseJson(
  body: { parts: Uint8Array[]; size: number },
  lift: LiftPaths,
): Promise<unknown> {
  try {
    return body.size >= OFF_THREAD_MIN_BYTES
      ? await parseJsonOffThread(body.parts, lift)
      : parseJsonBytes(body.parts, lift).value;
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    throw new HttpError(400, "bad_json", `The body is not valid JSON: ${error.message}`);
  }
}

/** Checks a JSON body's value with `schema`; throws a 400 HttpError naming the bad field. */
function checkBody<T extends z.ZodType>(body: unknown, schema: T): z.output<T> {
  const result = schema.safeParse(body);
  if (!result.success) throw new HttpError(400, "bad_body", describeIssues(result.error, "field"));
  return result.data;
}

/**
 * The check that enforces `config` on `method` for the running `services`, in this
 * order: each path parameter that names a model exists (`scheduler.require`: the
 * unknown-model 404 before a body is read), the query string, then the JSON body (not
 * on GET; with `config.maxElements`, counted while it streams in; a large one parsed in a
 * body worker). Null when the config asks for none of them on this method.
 */
export function requestValidator(
  method: string,
  config: RouteConfig,
  services: Services,
): ((c: Context<AppEnv>) => Promise<void>) | null {
  const models = Object.entries(config.params ?? {})
    .filter(([, names]) => names === "model").map(([name]) => name);
  // A query schema that depends on the settings is built once: they do not change.
  const query = typeof config.query === "function" ? config.query(services.config) : config.query;
  // A binary body (JSON header + raw tensor bytes) is read by its handler, never as JSON.
  const body = method === "GET" || config.binary ? undefined : config.body;
  if (models.length === 0 && !query && !body) return null;
  return async (c) => {
    for (const name of models) services.scheduler.require(c.req.param(name) ?? "");
    // What `c.req.valid("query" | "json")` answers the handler (typed by its config there).
    if (query) c.req.addValidatedData("query", parseQuery(c.req.query(), query) as object);
    if (body) {
      const read = await readBlocks(c.req.raw, config.maxElements);
      const value = await parseJson(read, config.lift ?? {});
      c.req.addValidatedData("json", checkBody(value, body) as object);
    }
  };
}
