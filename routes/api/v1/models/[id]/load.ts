/** `POST /api/v1/models/{id}/load`: body `{device?: "gpu" | "cpu"}`. Mutating: needs the token when one is set. */
import { z } from "zod";
import type { Handlers } from "../../../../../core/http/context.ts";
import { parseJsonBody } from "../../../../../core/http/validate.ts";

const loadBody = z.object({
  device: z.enum(["gpu", "cpu"], { error: 'must be "gpu" or "cpu"' }).optional(),
}).strict();

/** Loads the model (default: on the GPU when one is usable) and answers its ModelReport. */
export const handler: Handlers = {
  POST: async (c) => {
    const { manager } = c.var.services;
    const id = c.req.param("id")!;
    manager.get(id); // 404 first
    const body = await parseJsonBody(c, loadBody);
    return c.json(await manager.load(id, body.device ?? manager.defaultDevice));
  },
};
