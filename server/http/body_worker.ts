/**
 * The body worker: parses a large body off the main thread, a JSON one (./json_body.ts:
 * its long number arrays lifted, its large base64 `data:` URLs decoded) or a multipart
 * upload's file (./multipart.ts), so one large request never holds up the others (health,
 * the pollers). What it made comes back by transfer, moved, not copied. It runs with no
 * permissions and imports nothing but those two modules. The main side is ./body_pool.ts.
 * @module
 */
import { type LiftPaths, parseJsonBytes } from "./json_body.ts";
import { multipartFile } from "./multipart.ts";

/**
 * A job for the body worker, its bytes transferred: a JSON body's parts and where to lift,
 * or a multipart body and the file field to read.
 */
export type BodyJob =
  | { id: number; kind: "json"; parts: Uint8Array[]; lift: LiftPaths }
  | {
    id: number;
    kind: "multipart";
    body: Uint8Array<ArrayBuffer>;
    contentType: string;
    field: string;
  };

/**
 * Its answer: the parsed value, or why not: the parser's own message (`syntax`), or a
 * value nested too deeply to hand back (`depth`: the structured clone recurses).
 */
export type BodyJobResult =
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; reason: "syntax" | "depth"; message: string };

/** Runs one job; answers its result and the buffers to transfer back. */
async function run(job: BodyJob): Promise<[BodyJobResult, Transferable[]]> {
  if (job.kind === "multipart") {
    const field = await multipartFile(job.body, job.contentType, job.field);
    const buffers = field.ok && field.bytes ? [field.bytes.buffer] : [];
    return [{ id: job.id, ok: true, value: field }, buffers];
  }
  try {
    const { value, buffers } = parseJsonBytes(job.parts, job.lift);
    return [{ id: job.id, ok: true, value }, buffers];
  } catch (error) {
    return [{ id: job.id, ok: false, reason: "syntax", message: (error as Error).message }, []];
  }
}

// Only inside a worker: importing this file for its types starts nothing.
if (typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope !== "undefined") {
  self.onmessage = async (event: MessageEvent<BodyJob>) => {
    const [result, transfer] = await run(event.data);
    try {
      self.postMessage(result, { transfer });
    } catch (error) {
      // Valid JSON nested deeper than the clone's stack (a 100,000-deep array, say).
      const message = (error as Error).message;
      self.postMessage({ id: result.id, ok: false, reason: "depth", message });
    }
  };
}
