/**
 * `GET /api/v1/pipelines/{id}/stream` (WebSocket): feeds chunks to a pipeline and answers
 * each. The pipeline counts as active while the socket is open, so it is never evicted
 * mid-stream. Silero VAD is the built-in example: send 16 kHz mono audio as binary
 * frames of little-endian float32 (or text `{"samples": [...]}`), receive
 * `{chunk, probabilities, speechSegments, openSpeechStartSec, device}` per chunk; send
 * `{"end": true}` to close the last speech segment. The plugin's stream state (for VAD,
 * the recurrent state and the unfinished frame) stays on the server between chunks.
 */
import type { Context } from "hono";
import { upgradeWebSocket } from "hono/deno";
import type { Handlers, RouteConfig } from "@/server/http/context.ts";
import { HttpError } from "@/server/http/http_error.ts";
import { pluginOutputToJson } from "@/server/http/plugin_json.ts";
import { headerPriority } from "@/server/http/priority.ts";
import { PipelineError } from "@/core/pipelines/pipeline_error.ts";

/** Largest chunk accepted, in samples (10 s of 16 kHz audio). */
export const MAX_CHUNK_SAMPLES = 160_000;
/** Largest text chunk, in characters (MAX_CHUNK_SAMPLES numbers as JSON, with room). */
export const MAX_TEXT_CHUNK_CHARS = MAX_CHUNK_SAMPLES * 24;
/**
 * Chunks, and bytes, one socket may have waiting for the pipeline: a client that sends
 * faster than the pipeline answers past either is closed (1008, with the reason) instead
 * of growing the queue; on main a flood of 977 MiB grew the process by 845 MiB and ran
 * for 90 s after the client left. A whole recording sent at once in small chunks fits.
 */
export const MAX_QUEUED_CHUNKS = 256;
/** See {@link MAX_QUEUED_CHUNKS}: 16 MiB is 4 minutes of 16 kHz float32 audio. */
export const MAX_QUEUED_BYTES = 16 * 2 ** 20;

/** Inference over a WebSocket: needs the token with HEADROOM_TOKEN_FOR_INFER. */
export const config: RouteConfig = {
  priority: true,
  summary: "WebSocket: feed chunks (audio for Silero VAD) to a pipeline, kept active while open",
  auth: "infer",
  produces: "websocket",
};

/** Upgrades to a WebSocket and runs the chunk loop. */
export const handler: Handlers<"/api/v1/pipelines/:id/stream"> = {
  GET: async (c) => {
    const id = c.req.param("id");
    const { scheduler } = c.var.services;
    const model = scheduler.model(id); // 404 before upgrading
    const priority = headerPriority(c); // 400 before upgrading
    if (!model.plugin) {
      return c.json({
        error: { code: "bad_request", message: `Model "${id}" has no plugin to stream to` },
      }, 400);
    }
    const release = c.var.services.streams.acquire(); // 503 when too many are open
    let state: unknown = undefined;
    let chunk = 0;
    let chain: Promise<void> = Promise.resolve();
    let queued = 0; // chunks received and not yet answered
    let queuedBytes = 0; // and their size
    let open = true; // false once the client left or was closed: queued chunks are dropped
    // Out of GPU memory on a chunk: the scheduler's one policy (evict one more and retry,
    // then the CPU or a refusal, as configured), the same as every other route's.
    const process = async (payload: unknown) => {
      const result = await scheduler.run(id, { kind: "plugin", payload }, {
        trigger: "stream",
        priority,
      });
      return {
        output: result.output.kind === "plugin" ? result.output.payload : null,
        device: result.device,
      };
    };
    const { shutdown } = c.var.services;
    let stopOnShutdown: (() => void) | null = null;
    const upgrade = upgradeWebSocket(() => ({
      onOpen: (_event, ws) => {
        scheduler.markActive(id);
        // The service is stopping: close at once (1001 "going away"), not at the deadline.
        stopOnShutdown = () => ws.close(1001, "server stopped");
        if (shutdown.aborted) stopOnShutdown();
        else shutdown.addEventListener("abort", stopOnShutdown, { once: true });
      },
      onClose: () => {
        open = false;
        if (stopOnShutdown) shutdown.removeEventListener("abort", stopOnShutdown);
        scheduler.markIdle(id);
        release();
      },
      onMessage: (event, ws) => {
        if (!open) return;
        const size = typeof event.data === "string"
          ? event.data.length
          : event.data instanceof Blob
          ? event.data.size
          : (event.data as ArrayBuffer).byteLength;
        if (queued >= MAX_QUEUED_CHUNKS || queuedBytes + size > MAX_QUEUED_BYTES) {
          open = false;
          ws.close(
            1008,
            `over ${MAX_QUEUED_CHUNKS} chunks or ${MAX_QUEUED_BYTES} bytes queued: send slower`,
          );
          return;
        }
        if (typeof event.data === "string" && event.data.length > MAX_TEXT_CHUNK_CHARS) {
          open = false;
          ws.close(1009, `a text chunk holds at most ${MAX_TEXT_CHUNK_CHARS} characters`);
          return;
        }
        queued++;
        queuedBytes += size;
        const handleChunk = async () => {
          let samples: Float32Array | number[] | null = null;
          let end = false;
          if (event.data instanceof ArrayBuffer || event.data instanceof Blob) {
            const buffer = event.data instanceof Blob ? await event.data.arrayBuffer() : event.data;
            if (buffer.byteLength % 4 !== 0) {
              ws.send(
                JSON.stringify({
                  error: {
                    code: "bad_chunk",
                    message:
                      "a binary chunk must be float32 samples (length a multiple of 4 bytes)",
                  },
                }),
              );
              return;
            }
            samples = new Float32Array(buffer.slice(0));
          } else {
            try {
              const message = JSON.parse(String(event.data));
              end = message?.end === true;
              samples = Array.isArray(message?.samples) ? message.samples : end ? [] : null;
            } catch {
              samples = null;
            }
            if (samples === null) {
              ws.send(
                JSON.stringify({
                  error: {
                    code: "bad_chunk",
                    message: 'expected {"samples": [numbers]} or {"end": true}',
                  },
                }),
              );
              return;
            }
          }
          if (samples.length > MAX_CHUNK_SAMPLES) {
            ws.send(
              JSON.stringify({
                error: {
                  code: "too_large",
                  message: `a chunk holds at most ${MAX_CHUNK_SAMPLES} samples`,
                },
              }),
            );
            return;
          }
          try {
            const { output, device } = await process({ samples, stream: !end, state });
            state = (output as { state?: unknown })?.state;
            const { state: _hidden, ...visible } = (output ?? {}) as Record<string, unknown>;
            ws.send(
              JSON.stringify(
                { chunk: chunk++, device, ...visible },
                (_key, value) =>
                  ArrayBuffer.isView(value) || typeof value === "bigint"
                    ? pluginOutputToJson(value)
                    : value,
              ),
            );
            if (end) ws.close(1000, "end of stream");
          } catch (error) {
            const code = error instanceof PipelineError ? error.code : "internal";
            ws.send(JSON.stringify({ error: { code, message: (error as Error).message } }));
            if (code === "oom" || code === "worker_died") ws.close(1011, code);
          }
        };
        // One chunk at a time, in order: each depends on the state the last one left.
        chain = chain.then(() => open ? handleChunk() : undefined).finally(() => {
          queued--;
          queuedBytes -= size;
        });
      },
    }));
    // Not a WebSocket handshake (no Upgrade header, or no Sec-WebSocket-Key): a JSON
    // error, not the nothing (a 500 from Deno.serve) or the TypeError the upgrade gives.
    let response: Response | undefined;
    try {
      response = c.req.header("upgrade")?.toLowerCase() === "websocket"
        // The upgrade middleware is typed for an untyped context (no path, no app variables).
        ? await upgrade(c as unknown as Context, () => Promise.resolve()) as Response | undefined
        : undefined;
    } catch (error) {
      release();
      throw new HttpError(
        400,
        "bad_handshake",
        `The WebSocket handshake is invalid: ${(error as Error).message}`,
      );
    }
    if (!response) {
      release(); // never opened: give its slot back
      throw new HttpError(
        426,
        "upgrade_required",
        `GET /api/v1/pipelines/${id}/stream is a WebSocket: connect with "Upgrade: websocket"`,
        { Upgrade: "websocket" },
      );
    }
    return response;
  },
};
