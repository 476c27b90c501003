/**
 * `POST /api/v1/chains` with `{"id"?: "ocr", "pipelines": ["ocr-det", "ocr-cls", "ocr-rec"]}`:
 * creates an ordered chain after a pre-flight budget check and places its members on the
 * GPU. 201 with the chain when it fits; 409 with the check's message when it does not.
 * `GET` lists the chains. Mutating: needs the token when one is set.
 */
import { z } from "zod";
import type { Handlers, RouteConfig } from "@/server/http/context.ts";
import { HttpError } from "@/server/http/http_error.ts";
import { errorBodySchema, fitResultSchema, pipelineListSchema } from "@/server/http/schemas.ts";
import { type Chain, createChain } from "@/core/pipelines/chains.ts";

/** The request body. */
export const bodySchema = z.object({
  id: z.string().regex(
    /^[a-z0-9][a-z0-9._-]{0,63}$/,
    "must be 1-64 lowercase letters, digits, '.', '_' or '-'",
  )
    .optional(),
  pipelines: pipelineListSchema,
}).strict();

const chainSchema = z.object({
  id: z.string(),
  pipelines: z.array(z.string()),
  createdAt: z.number(),
  check: fitResultSchema,
  placements: z.record(z.string(), z.enum(["gpu", "cpu", "none"])),
}) satisfies z.ZodType<Chain>;

/** Mutating (POST; the GET list is a read). */
export const config = {
  summary:
    "Create an ordered chain after a pre-flight check and place it on the GPU (GET lists them)",
  auth: "mutating",
  body: bodySchema,
  responses: {
    GET: { 200: z.object({ chains: z.array(chainSchema) }) },
    POST: { 201: chainSchema, 409: errorBodySchema.extend({ check: fitResultSchema }) },
  },
} satisfies RouteConfig;

/** Creates a chain, or lists them. */
export const handler: Handlers<"/api/v1/chains", typeof config> = {
  GET: async (c) => c.json({ chains: await c.var.services.store.chains() }),
  POST: async (c) => {
    const input = c.req.valid("json");
    const { scheduler } = c.var.services;
    for (const id of input.pipelines) scheduler.require(id);
    if (new Set(input.pipelines).size !== input.pipelines.length) {
      throw new HttpError(400, "bad_body", 'field "pipelines": lists a pipeline twice');
    }
    const chain = await createChain(
      c.var.services,
      input.id ?? input.pipelines.join("+"),
      input.pipelines,
    );
    if (!chain.check.fits) {
      return c.json({
        error: { code: "does_not_fit", message: chain.check.message },
        check: chain.check,
      }, 409);
    }
    return c.json(chain, 201);
  },
};
