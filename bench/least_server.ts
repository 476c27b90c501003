/**
 * The least server: `Deno.serve`, `req.json()`, onnxruntime-node `run` on the main thread,
 * `Response.json`, and nothing else. What a request to one model costs with no routing,
 * validation, scheduling or worker hop: the floor bench/serving.ts compares Headroom with.
 * Takes the Open Inference Protocol's JSON body (one input, flat `data`) so both servers
 * get the same bytes. Prints its URL once listening.
 *
 *     deno run -A bench/least_server.ts MODEL.onnx THREADS
 * @module
 */
import { createNativeSession, loadNativeOrt } from "../workers/engines/native.ts";
import { DEFAULT_ORT_NODE_DIR } from "../workers/engines/choose.ts";
import { scanOnnxFile } from "../core/models/external_data.ts";

const [modelPath, threads] = Deno.args;
const ort = loadNativeOrt(DEFAULT_ORT_NODE_DIR);
// The worker's own session options (pre-packing by the model's size).
const { totalBytes } = await scanOnnxFile(modelPath);
const session = await createNativeSession(ort, modelPath, Number(threads), totalBytes);
Deno.serve({
  hostname: "127.0.0.1",
  port: 0,
  onListen: ({ port }) => console.log(`http://127.0.0.1:${port}`),
}, async (req) => {
  const { inputs: [input] } = await req.json();
  const feed = new ort.Tensor("float32", Float32Array.from(input.data), input.shape);
  const out = (await session.run({ [input.name]: feed })).output;
  return Response.json({
    model_name: "least",
    outputs: [{
      name: "output",
      shape: out.dims,
      datatype: "FP32",
      data: Array.from(out.data as Float32Array),
    }],
  });
});
