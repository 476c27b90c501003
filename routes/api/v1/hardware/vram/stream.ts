/**
 * `GET /api/v1/hardware/vram/stream`: Server-Sent Events. A `snapshot` event (the same
 * body as `GET /api/v1/hardware/vram`) at once, then on every change of the devices'
 * figures or new pipeline event, at most four a
 * second (changes in between are folded into the next one), and a `heartbeat` event
 * every 15 s so proxies and clients can tell a quiet stream from a dead one. When the
 * service stops, a `shutdown` event, and the stream ends.
 */
import { streamSSE } from "hono/streaming";
import type { Handlers, RouteConfig } from "@/server/http/context.ts";

/** Minimum gap between two snapshot events. */
export const MIN_EVENT_GAP_MS = 250;
/** Gap between heartbeats. */
export const HEARTBEAT_MS = 15_000;

/** A read; answers Server-Sent Events. */
export const config: RouteConfig = {
  summary:
    "Server-Sent Events: a snapshot at once and on every change (≤ 4/s), a heartbeat every 15 s",
  auth: "read",
  produces: "sse",
};

/** Opens the stream and keeps it until the client goes away. */
export const handler: Handlers = {
  GET: (c) => {
    const services = c.var.services;
    // HEAD (routed here by Hono) gets the headers and no stream: Deno drops a HEAD's body
    // unread, so a stream opened for it never ended and held its slot until restart.
    if (c.req.method === "HEAD") {
      return c.body(null, 200, {
        "Content-Type": "text/event-stream",
        "Cache-Control": "no-cache",
      });
    }
    const release = services.streams.acquire(); // 503 when too many are open
    return streamSSE(c, async (stream) => {
      let lastSentAt = 0;
      let pending: ReturnType<typeof setTimeout> | undefined;
      let closed = false;

      const send = async (event: string, data: unknown) => {
        if (closed) return;
        try {
          const text = typeof data === "string" ? data : JSON.stringify(data);
          await stream.writeSSE({ event, data: text, id: String(Date.now()) });
        } catch {
          closed = true;
        }
      };
      const sendSnapshot = () => {
        pending = undefined;
        lastSentAt = Date.now();
        // The report feed's build: the same serialized report the GET route answers.
        return send("snapshot", services.reports.current().json);
      };
      const onChange = () => {
        if (pending !== undefined || closed) return;
        const wait = MIN_EVENT_GAP_MS - (Date.now() - lastSentAt);
        if (wait <= 0) void sendSnapshot();
        else pending = setTimeout(sendSnapshot, wait);
      };

      const unsubscribe = services.monitor.subscribe(onChange);
      // A pipeline event (transition, eviction…) changes the report too: same throttle.
      const unsubscribeEvents = services.events.subscribe(onChange);
      const heartbeat = setInterval(() => void send("heartbeat", { at: Date.now() }), HEARTBEAT_MS);
      // The client goes away, or the service stops: then a `shutdown` event tells the
      // page (it shows "server stopped") and the stream ends at once.
      let onShutdown = () => {};
      const done = new Promise<void>((resolve) => {
        stream.onAbort(resolve);
        onShutdown = () => {
          void send("shutdown", { at: Date.now(), reason: "server stopped" }).then(resolve);
        };
        if (services.shutdown.aborted) onShutdown();
        else services.shutdown.addEventListener("abort", onShutdown, { once: true });
      });
      try {
        await sendSnapshot();
        await done;
      } finally {
        services.shutdown.removeEventListener("abort", onShutdown);
        release();
        closed = true;
        unsubscribe();
        unsubscribeEvents();
        clearInterval(heartbeat);
        if (pending !== undefined) clearTimeout(pending);
      }
    });
  },
};
