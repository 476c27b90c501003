/**
 * The body worker: parses a large JSON body off the main thread (./json_body.ts: its long
 * number arrays lifted, its large base64 `data:` URLs decoded), so one large request never
 * holds up the others (health, the pollers). What it lifted comes back by transfer, moved,
 * not copied. It runs with no permissions and imports nothing but json_body.ts. The main
 * side is ./body_pool.ts.
 * @module
 */
import { type LiftPaths, parseJsonBytes } from "./json_body.ts";

/** A job for the body worker: a JSON body's parts (transferred) and where to lift. */
export interface BodyJob {
  id: number;
  parts: Uint8Array[];
  lift: LiftPaths;
}

/**
 * Its answer: the parsed value, or why not: the parser's own message (`syntax`), or a
 * value nested too deeply to hand back (`depth`: the structured clone recurses).
 */
export type BodyJobResult =
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; reason: "syntax" | "depth"; message: string };

/** Runs one job; answers its result and the buffers to transfer back. */
function run(job: BodyJob): [BodyJobResult, Transferable[]] {
  try {
    const { value, buffers } = parseJsonBytes(job.parts, job.lift);
    return [{ id: job.id, ok: true, value }, buffers];
  } catch (error) {
    return [{ id: job.id, ok: false, reason: "syntax", message: (error as Error).message }, []];
  }
}

// Only inside a worker: importing this file for its types starts nothing.
if (typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope !== "undefined") {
  self.onmessage = (event: MessageEvent<BodyJob>) => {
    const [result, transfer] = run(event.data);
    try {
      self.postMessage(result, { transfer });
    } catch (error) {
      // Valid JSON nested deeper than the clone's stack (a 100,000-deep array, say).
      const message = (error as Error).message;
      self.postMessage({ id: result.id, ok: false, reason: "depth", message });
    }
  };
}
