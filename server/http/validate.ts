/**
 * Validation of query strings and JSON bodies with zod schemas: a bad value becomes a
 * 400 whose message names the field and says what was expected.
 * @module
 */
import type { Context } from "hono";
import type { z } from "zod";
import { HttpError } from "./errors.ts";
import { describeIssues } from "../../core/describe_issues.ts";

/** Parses the query string with `schema`; throws a 400 HttpError naming the bad parameter. */
export function parseQuery<T extends z.ZodType>(c: Context, schema: T): z.output<T> {
  const result = schema.safeParse(c.req.query());
  if (!result.success) {
    throw new HttpError(400, "bad_query", describeIssues(result.error, "query parameter"));
  }
  return result.data;
}

/** Reads and parses a JSON body with `schema`; throws a 400 HttpError naming the bad field. */
export async function parseJsonBody<T extends z.ZodType>(
  c: Context,
  schema: T,
): Promise<z.output<T>> {
  let body: unknown;
  try {
    const text = await c.req.text();
    body = text.trim() === "" ? {} : JSON.parse(text);
  } catch (error) {
    throw new HttpError(400, "bad_json", `The body is not valid JSON: ${(error as Error).message}`);
  }
  const result = schema.safeParse(body);
  if (!result.success) throw new HttpError(400, "bad_body", describeIssues(result.error, "field"));
  return result.data;
}
