/** `GET /v2/models/{name}/versions/{version}/ready`: readiness (version "1" only). */
export { readyConfig as config, readyHandler as handler } from "@/routes/v2/(_lib)/model.ts";
