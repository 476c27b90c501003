/** `GET /v2/models/{name}/ready`: is the model ready for inference. */
export { readyConfig as config, readyHandler as handler } from "../../_model.ts";
