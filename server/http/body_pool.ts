/**
 * The main side of the body workers (./body_worker.ts): at most {@link BODY_WORKERS}
 * workers, started on the first large body and ended after {@link BODY_WORKER_IDLE_MS}
 * without work, that parse large JSON bodies (and decode the base64 images in them) and
 * read large multipart uploads. On the main thread a 64 MiB infer body's parse and
 * validation with three 20 MiB chat images held `/api/v1/health` for ~2 s
 * (tests/json_bounds_test.ts), a 20 MiB multipart image 250–400 ms. A body below
 * {@link OFF_THREAD_MIN_BYTES} stays on the main thread: the hop would cost more than the
 * parse.
 * @module
 */
import type { BodyJob, BodyJobResult } from "./body_worker.ts";
import type { LiftPaths } from "./json_body.ts";
import { HttpError } from "./http_error.ts";
import { type MultipartField, multipartFile } from "./multipart.ts";
import { systemClock, type TimerHandle } from "../../core/clock.ts";

/** A body at least this large is parsed in a body worker. */
export const OFF_THREAD_MIN_BYTES = 256 * 1024;

/** A job as the caller writes it: the pool adds the id. */
type JobBody = BodyJob extends infer J ? J extends BodyJob ? Omit<J, "id"> : never : never;

/** Most body workers at once: the parse of one large body never waits on another's. */
export const BODY_WORKERS = 2;

/** A body worker without work for this long is ended (the next large body starts one). */
export const BODY_WORKER_IDLE_MS = 10_000;

// Deno's own Worker, from before onnxruntime-web's glue (if loaded on the main thread)
// replaces it with node's worker_threads.Worker.
const DenoWorker: typeof Worker = globalThis.Worker;

/** One body worker and the jobs it is running. */
interface Slot {
  worker: Worker;
  pending: Map<number, PromiseWithResolvers<BodyJobResult>>;
  idle: TimerHandle | null;
}

/** The body workers of this process. */
class BodyPool {
  #slots: Slot[] = [];
  #nextId = 1;
  #jobs = 0;

  /** Bodies parsed in a body worker so far (for tests and figures). */
  get jobs(): number {
    return this.#jobs;
  }

  /** Runs `job` in the least busy body worker; `transfer` moves its buffers there. */
  run(job: JobBody, transfer: Transferable[] = []): Promise<BodyJobResult> {
    const slot = this.#slot();
    const id = this.#nextId++;
    const settle = Promise.withResolvers<BodyJobResult>();
    if (slot.idle !== null) systemClock.clearTimeout(slot.idle);
    slot.idle = null;
    slot.pending.set(id, settle);
    this.#jobs++;
    try {
      slot.worker.postMessage({ ...job, id }, { transfer });
    } catch {
      // A buffer that cannot move (shared, or listed twice): send a copy instead.
      slot.worker.postMessage({ ...job, id });
    }
    return settle.promise;
  }

  /** Ends every body worker; jobs still running reject. The next job starts a fresh one. */
  close(): void {
    for (const slot of this.#slots.splice(0)) this.#end(slot, "the body workers were closed");
  }

  #slot(): Slot {
    const free = this.#slots.reduce<Slot | null>(
      (best, slot) => (best === null || slot.pending.size < best.pending.size ? slot : best),
      null,
    );
    if (free && (free.pending.size === 0 || this.#slots.length >= BODY_WORKERS)) return free;
    const worker = new DenoWorker(new URL("./body_worker.ts", import.meta.url), {
      type: "module",
      name: "body-parser",
      deno: { permissions: "none" },
    } as WorkerOptions);
    const slot: Slot = { worker, pending: new Map(), idle: null };
    worker.onmessage = (event: MessageEvent<BodyJobResult>) => {
      const result = event.data;
      slot.pending.get(result.id)?.resolve(result);
      slot.pending.delete(result.id);
      if (slot.pending.size === 0) {
        // Unref'd: an idle worker never keeps the process running.
        slot.idle = systemClock.setTimeout(() => this.#retire(slot), BODY_WORKER_IDLE_MS);
      }
    };
    worker.onerror = (event) => {
      event.preventDefault(); // the requests it held fail; the service goes on
      this.#retire(slot, `the body worker failed: ${event.message ?? "unknown error"}`);
    };
    this.#slots.push(slot);
    return slot;
  }

  #retire(slot: Slot, reason = "the body worker was idle"): void {
    this.#slots = this.#slots.filter((s) => s !== slot);
    this.#end(slot, reason);
  }

  #end(slot: Slot, reason: string): void {
    if (slot.idle !== null) systemClock.clearTimeout(slot.idle);
    slot.worker.terminate();
    for (const settle of slot.pending.values()) settle.reject(new Error(reason));
    slot.pending.clear();
  }
}

/** This process's body workers. */
export const bodyPool: BodyPool = new BodyPool();

/**
 * Parses a large JSON body in a body worker (server/http/json_body.ts's rule, the long
 * values at `lift` converted there); its parts move there (the caller loses them). Throws
 * a SyntaxError with the parser's message when the text is not JSON, a 400 HttpError when
 * it nests too deeply to be handed back.
 */
export async function parseJsonOffThread(parts: Uint8Array[], lift: LiftPaths): Promise<unknown> {
  const buffers = [...new Set(parts.map((part) => part.buffer))];
  const result = await bodyPool.run({ kind: "json", parts, lift }, buffers);
  if (result.ok) return result.value;
  if (result.reason === "syntax") throw new SyntaxError(result.message);
  throw new HttpError(
    400,
    "bad_body",
    "The body nests arrays or objects too deeply to be read; send flatter JSON",
  );
}

/**
 * The file field `field` of a multipart `body` (a large one read in a body worker, which
 * takes the bytes: the caller loses them), or why the body could not be read.
 */
export async function readMultipartFile(
  body: Uint8Array<ArrayBuffer>,
  contentType: string,
  field: string,
): Promise<MultipartField> {
  if (body.length < OFF_THREAD_MIN_BYTES) return await multipartFile(body, contentType, field);
  const result = await bodyPool.run({ kind: "multipart", body, contentType, field }, [body.buffer]);
  if (!result.ok) return { ok: false, message: result.message };
  return result.value as MultipartField;
}
