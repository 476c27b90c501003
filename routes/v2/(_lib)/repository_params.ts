/**
 * The body of Triton's repository load and unload requests, `{parameters?: {…}}`: the
 * parameters Headroom takes, and a 400 naming any other (a model comes from the models
 * file, so `config` and `file:…` overrides are refused).
 */
import { z } from "zod";
import { HttpError } from "@/server/http/http_error.ts";
import { parametersSchema } from "@/server/oip/infer.ts";

/** `$repository_load_request` / `$repository_unload_request`. */
export const repositoryBodySchema = z.object({ parameters: parametersSchema.optional() }).strict();

/** The body's parameters; refuses one not in `accepted`, saying why. */
export function repositoryParameters(
  body: z.output<typeof repositoryBodySchema>,
  accepted: readonly string[],
): Record<string, string | number | boolean> {
  const { parameters = {} } = body;
  for (const name of Object.keys(parameters)) {
    if (accepted.includes(name)) continue;
    const why = name === "config" || name.startsWith("file:")
      ? "Headroom loads models from its models file, not from a config or files in the request"
      : `expected ${accepted.length ? accepted.map((n) => `"${n}"`).join(", ") : "none"}`;
    throw new HttpError(400, "bad_body", `field "parameters.${name}" is not supported: ${why}`);
  }
  return parameters;
}
