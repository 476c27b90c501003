/** `GET /v2/models/{name}`: the Open Inference Protocol's model metadata. */
export { metadataConfig as config, metadataHandler as handler } from "@/routes/v2/(_lib)/model.ts";
