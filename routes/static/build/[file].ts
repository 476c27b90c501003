/**
 * `GET /static/build/:file`: the content-hashed page assets (island bundle, styles),
 * immutable and precompressed. They are built once at start, never per request.
 * @module
 */
import type { Handlers, RouteConfig } from "@/server/http/context.ts";
import { HttpError } from "@/server/http/http_error.ts";
import { preparePageAssets } from "@/runtime/server/bundle.ts";
import { builtFileResponse } from "@/runtime/server/serve.ts";

/** The page's assets: open like the page. */
export const config: RouteConfig = {
  summary: "The dashboard's content-hashed assets (immutable)",
  auth: "page",
  produces: "asset",
};

/** Serves one built file in the best encoding the client accepts. */
export const handler: Handlers<"/static/build/:file"> = {
  GET: async (c) => {
    const name = c.req.param("file");
    const file = (await preparePageAssets()).files.get(name);
    if (!file) {
      throw new HttpError(
        404,
        "not_found",
        `No built asset "${name}": asset names change with every build; reload the page.`,
      );
    }
    return builtFileResponse(file, c.req.header("Accept-Encoding"));
  },
};
