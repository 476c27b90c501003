/**
 * A short-lived worker that checks the native engine works here, under the same
 * permissions a native pipeline worker gets: loads onnxruntime-node from the folder it is
 * sent, creates a session on a tiny model and runs it once, then answers
 * `{ok: true, version}` or `{ok: false, message}`.
 * @module
 */
import { createNativeSession, loadNativeOrt } from "./native.ts";

/** The probe's request: where onnxruntime-node lives and a tiny model's bytes on disk. */
export interface ProbeRequest {
  ortNodeDir: string;
  modelPath: string;
  width: number;
}

/** The probe's answer. */
export type ProbeReply = { ok: true; ms: number } | { ok: false; message: string };

const post = (reply: ProbeReply) => (globalThis as unknown as Worker).postMessage(reply);

globalThis.addEventListener("message", async (event: Event) => {
  const { ortNodeDir, modelPath, width } = (event as MessageEvent<ProbeRequest>).data;
  const started = performance.now();
  try {
    const ort = loadNativeOrt(ortNodeDir);
    const session = await createNativeSession(ort, modelPath, 1, 0);
    const input = new ort.Tensor("float32", new Float32Array(width).fill(0.5), [1, width]);
    await session.run({ input });
    await session.release();
    post({ ok: true, ms: performance.now() - started });
  } catch (error) {
    post({ ok: false, message: (error as Error).message ?? String(error) });
  }
});
