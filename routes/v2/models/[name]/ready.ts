/** `GET /v2/models/{name}/ready`: is the model ready for inference. */
export { readyConfig as config, readyHandler as handler } from "@/routes/v2/(_lib)/model.ts";
