// Long-lived answers are bounded (issue 20 findings 9 and 11): a HEAD of the SSE stream
// holds no stream slot, and a WebSocket client that floods chunks without reading is
// closed with the reason while the chunks it queued are dropped once it leaves.
import assert from "node:assert/strict";
import { serveHeadroom } from "../server/serve_headroom.ts";
import { MAX_QUEUED_CHUNKS } from "../routes/api/v1/pipelines/[id]/stream.ts";
import { peakRssGrowth } from "./_image_bombs.ts";

async function serve() {
  const headroom = await serveHeadroom({ config: { gpu: "cpu" }, tempPrefix: "headroom-streams-" });
  return { ...headroom, [Symbol.asyncDispose]: headroom.close };
}

Deno.test("streams - 64 HEADs of the SSE stream hold no slot: a GET stream still gets 200", async () => {
  await using s = await serve();
  const max = s.service.services.config.maxStreams;
  for (let i = 0; i < max; i++) {
    const head = await fetch(`${s.url}/api/v1/hardware/vram/stream`, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.match(head.headers.get("content-type") ?? "", /text\/event-stream/);
    await head.body?.cancel();
  }
  assert.equal(s.service.services.streams.open, 0, "no slot held after the HEADs answered");
  const controller = new AbortController();
  const get = await fetch(`${s.url}/api/v1/hardware/vram/stream`, { signal: controller.signal });
  assert.equal(get.status, 200, "the dashboard's stream still opens");
  const reader = get.body!.getReader();
  assert.match(new TextDecoder().decode((await reader.read()).value), /event: snapshot/);
  controller.abort();
  await reader.closed.catch(() => {});
});

/** Opens the VAD stream; answers the socket and a promise of its close event. */
async function openVad(url: string): Promise<{ ws: WebSocket; closed: Promise<CloseEvent> }> {
  const ws = new WebSocket(`${url.replace("http", "ws")}/api/v1/pipelines/silero-vad/stream`);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = reject;
  });
  ws.onerror = () => {}; // a flooding client sees its socket reset: that is the point
  return { ws, closed: new Promise<CloseEvent>((resolve) => ws.onclose = resolve) };
}

/** The close event, or null when none came within `ms`. */
function closeWithin(closed: Promise<CloseEvent>, ms: number): Promise<CloseEvent | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<null>((resolve) => timer = setTimeout(() => resolve(null), ms));
  return Promise.race([closed, timeout]).finally(() => clearTimeout(timer));
}

Deno.test("streams - a WebSocket client past the chunk queue is closed with the reason", async () => {
  await using s = await serve();
  const { scheduler } = s.service.services;
  await scheduler.load("silero-vad", "cpu");
  // The pipeline is held busy, so the chunks wait in the socket's queue, whatever the speed.
  const { promise: held, resolve: letGo } = Promise.withResolvers<void>();
  const run = scheduler.run.bind(scheduler);
  scheduler.run = async (...args: Parameters<typeof scheduler.run>) => {
    await held;
    return run(...args);
  };
  const { ws, closed } = await openVad(s.url);
  // One more chunk than the queue holds, none of the answers read first.
  for (let i = 0; i <= MAX_QUEUED_CHUNKS; i++) ws.send(new Float32Array(4));
  const close = await closeWithin(closed, 10_000);
  letGo();
  if (close === null) ws.close();
  assert.ok(close !== null, "the server closed the socket");
  assert.equal(close.code, 1008);
  assert.match(close.reason, new RegExp(`over ${MAX_QUEUED_CHUNKS} chunks or \\d+ bytes queued`));
});

Deno.test("streams - a WebSocket flood without reading ends the socket and drops its queue", async () => {
  await using s = await serve();
  const { scheduler } = s.service.services;
  await scheduler.load("silero-vad", "cpu");
  let runsAfterClose = 0;
  let closedAt: number | null = null;
  const run = scheduler.run.bind(scheduler);
  scheduler.run = (...args: Parameters<typeof scheduler.run>) => {
    if (closedAt !== null) runsAfterClose++;
    return run(...args);
  };
  const chunk = new Float32Array(160_000).map((_, i) => Math.sin(i / 20) * 0.3); // 10 s, 640 KB
  const { result: close, bytes } = await peakRssGrowth(async () => {
    const { ws, closed } = await openVad(s.url);
    // 200 chunks (128 MB) at once; the client reads nothing. On main the server took them
    // all (+845 MiB) and ran them for 90 s after the client left.
    for (let i = 0; i < 200 && ws.readyState === WebSocket.OPEN; i++) ws.send(chunk);
    const event = await closeWithin(closed, 20_000);
    closedAt = performance.now();
    if (event === null) ws.close();
    return event;
  });
  assert.ok(close !== null, "the server ended the flooding socket");
  assert.notEqual(close.code, 1000, "not a normal end: the flood was refused");
  await new Promise((resolve) => setTimeout(resolve, 1500));
  assert.ok(runsAfterClose <= 1, `${runsAfterClose} queued chunks ran after the socket closed`);
  assert.ok(bytes < 300 * 2 ** 20, `RSS grew ${(bytes / 2 ** 20).toFixed(0)} MiB`);
});
