/** `GET /v2/models/{name}/versions/{version}`: model metadata (version "1" only). */
export { metadataConfig as config, metadataHandler as handler } from "@/routes/v2/(_lib)/model.ts";
