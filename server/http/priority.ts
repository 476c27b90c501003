/**
 * A request's priority as HTTP carries it: the `X-Headroom-Priority` header on Headroom's
 * own and the OpenAI-style routes, `parameters.priority` in an Open Inference Protocol (v2)
 * request (a name, or Triton's integer convention). A bad value is a 400 naming the header
 * or field; an absent one leaves the model's default to the Scheduler.
 * @module
 */
import type { Context } from "hono";
import { PRIORITIES, type Priority } from "../../core/types.ts";
import { HttpError } from "./http_error.ts";

/** The request header that carries a priority. */
export const PRIORITY_HEADER = "X-Headroom-Priority";

/** The request's `X-Headroom-Priority` (high, normal or low, any case), or undefined when absent. */
export function headerPriority(c: Context): Priority | undefined {
  const value = c.req.header(PRIORITY_HEADER);
  if (value === undefined) return undefined;
  const priority = value.trim().toLowerCase();
  if (isPriority(priority)) return priority;
  throw new HttpError(
    400,
    "bad_header",
    `header "${PRIORITY_HEADER}": expected high, normal or low, got ${JSON.stringify(value)}`,
  );
}

/**
 * A v2 request's `parameters.priority`, or undefined when absent: "high", "normal" or
 * "low", or Triton's schedule-policy integer (docs/protocol/extension_schedule_policy.md:
 * 0 is the model's default, 1 the highest level, larger numbers lower): 1 is high, 2
 * normal, 3 and above low.
 */
export function parameterPriority(value: unknown): Priority | undefined {
  if (value === undefined) return undefined;
  if (typeof value === "string" && isPriority(value)) return value;
  if (typeof value === "number" && Number.isSafeInteger(value) && value >= 0) {
    return value === 0 ? undefined : value === 1 ? "high" : value === 2 ? "normal" : "low";
  }
  throw new HttpError(
    400,
    "bad_body",
    `field "parameters.priority": expected "high", "normal", "low" or Triton's integer ` +
      `(0 the model's default, 1 high, 2 normal, 3 or more low), got ${JSON.stringify(value)}`,
  );
}

function isPriority(value: string): value is Priority {
  return (PRIORITIES as readonly string[]).includes(value);
}
