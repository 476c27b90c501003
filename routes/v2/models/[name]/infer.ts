/** `POST /v2/models/{name}/infer`: Open Inference Protocol inference (JSON or binary tensors). */
export { inferConfig as config, inferHandler as handler } from "@/routes/v2/(_lib)/model.ts";
