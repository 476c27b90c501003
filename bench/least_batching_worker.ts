/**
 * The least batching server's engine worker (bench/least_batching_server.ts): one
 * onnxruntime-node session, each message one run, its output transferred back. Nothing
 * else: no status, no checks, no deadlines. Its reply: the output and the run's ms.
 * @module
 */
import { createNativeSession, loadNativeOrt } from "../workers/engines/native.ts";
import { DEFAULT_ORT_NODE_DIR } from "../workers/engines/choose.ts";
import { scanOnnxFile } from "../core/models/external_data.ts";
type Session = Awaited<ReturnType<typeof createNativeSession>>;

/** The messages the least batching server sends its worker. */
export type LeastWorkerRequest =
  | { type: "init"; modelPath: string; threads: number }
  | { type: "run"; name: string; data: Float32Array; dims: number[] };

let session: Session | null = null;
const ort = loadNativeOrt(DEFAULT_ORT_NODE_DIR);
const post = (globalThis as unknown as {
  postMessage(message: unknown, transfer?: Transferable[]): void;
}).postMessage.bind(globalThis);

globalThis.addEventListener("message", async (event: Event) => {
  const request = (event as MessageEvent<LeastWorkerRequest>).data;
  if (request.type === "init") {
    const { totalBytes } = await scanOnnxFile(request.modelPath);
    session = await createNativeSession(ort, request.modelPath, request.threads, totalBytes);
    return post({ ready: true });
  }
  const start = performance.now();
  const feed = new ort.Tensor("float32", request.data, request.dims);
  const output = (await session!.run({ [request.name]: feed })).output;
  const data = (output.data as Float32Array).slice();
  post({ data, ms: performance.now() - start }, [data.buffer]);
});
