/** `POST /v2/models/{name}/versions/{version}/infer`: inference (version "1" only). */
export { inferConfig as config, inferHandler as handler } from "@/routes/v2/(_lib)/model.ts";
