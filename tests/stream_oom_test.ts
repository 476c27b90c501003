// The WebSocket stream route and out-of-memory: one policy for every route. A chunk that
// runs out of GPU memory goes through the Scheduler's retries (evict one more, at most
// MAX_OOM_RETRIES times, then the CPU or a refusal) and nothing else: the route runs no
// retry loop of its own on top (issue 18: it used to, up to 16 runs for one chunk).
import assert from "node:assert/strict";
import { Hono } from "hono";
import { handler } from "../routes/api/v1/pipelines/[id]/stream.ts";
import type { AppEnv, Services } from "../server/http/context.ts";
import { StreamLimiter } from "../server/http/limits.ts";
import { MAX_OOM_RETRIES, type Scheduler } from "../core/placement/scheduler.ts";
import { GiB, schedulerOnSim, SimGpu } from "./_sim_gpu.ts";
import { FakeClock } from "./_fake_clock.ts";

/** The stream route alone, served over a Scheduler on the simulated GPU (its models count as plugins). */
function serveStream(scheduler: Scheduler): Deno.HttpServer<Deno.NetAddr> & { base: string } {
  const plugins = new Proxy(scheduler, {
    get(target, key) {
      if (key === "model") return (id: string) => ({ ...target.model(id), plugin: true });
      const value = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  const services = {
    scheduler: plugins,
    streams: new StreamLimiter(4),
    shutdown: new AbortController().signal,
  } as unknown as Services;
  const app = new Hono<AppEnv>();
  app.use(async (c, next) => {
    c.set("services", services);
    await next();
  });
  app.get("/api/v1/pipelines/:id/stream", (c) => handler.GET!(c));
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, app.fetch);
  return Object.assign(server, { base: `ws://127.0.0.1:${server.addr.port}` });
}

/** Opens a stream on `id`, sends one chunk, answers the first message and how the socket closed. */
async function oneChunk(base: string, id: string): Promise<{ reply: unknown; code: number }> {
  const socket = new WebSocket(`${base}/api/v1/pipelines/${id}/stream`);
  const reply = new Promise<unknown>((resolve) =>
    socket.addEventListener("message", (e) => resolve(JSON.parse(String(e.data))), { once: true })
  );
  const closed = new Promise<number>((resolve) =>
    socket.addEventListener("close", (e) => resolve(e.code), { once: true })
  );
  await new Promise((resolve) => socket.addEventListener("open", resolve, { once: true }));
  socket.send(JSON.stringify({ samples: [0, 0, 0, 0] }));
  const first = await reply;
  if (socket.readyState === WebSocket.OPEN) socket.close(1000);
  return { reply: first, code: await closed };
}

Deno.test("stream - a chunk out of GPU memory takes the scheduler's retries only, then the refusal (reject)", async () => {
  const sim = new SimGpu({
    totalBytes: 10 * GiB,
    clock: new FakeClock(),
    pipelines: [
      ...Array.from({ length: 6 }, (_, i) => ({
        id: `p${i}`,
        gpuBytes: 1 * GiB,
        placement: "gpu" as const,
      })),
      { id: "vad", gpuBytes: 1 * GiB, placement: "gpu" },
    ],
  });
  const scheduler = schedulerOnSim(sim, { onInsufficientVram: "reject" });
  sim.failGpuRuns("vad", Infinity);
  const server = serveStream(scheduler);
  try {
    const { reply, code } = await oneChunk(server.base, "vad");
    assert.equal((reply as { error: { code: string } }).error.code, "oom");
    assert.equal(code, 1011, "the socket closes on out-of-memory");
    const runs = sim.calls.filter((c) => c.op === "run" && c.id === "vad");
    assert.equal(runs.length, MAX_OOM_RETRIES + 1, `one chunk ran ${runs.length} times`);
    const evicted = sim.calls.filter((c) => c.op === "offload").length;
    assert.equal(evicted, MAX_OOM_RETRIES, "one eviction per retry, none from the route");
  } finally {
    scheduler.close();
    await server.shutdown();
  }
});

Deno.test("stream - a chunk out of GPU memory moves to the CPU through the scheduler (cpu) and is answered there", async () => {
  const sim = new SimGpu({
    totalBytes: 10 * GiB,
    clock: new FakeClock(),
    pipelines: [{ id: "vad", gpuBytes: 1 * GiB, placement: "gpu" }],
  });
  const scheduler = schedulerOnSim(sim, { onInsufficientVram: "cpu" });
  sim.failGpuRuns("vad", Infinity);
  const server = serveStream(scheduler);
  try {
    const { reply } = await oneChunk(server.base, "vad");
    assert.equal((reply as { device: string }).device, "cpu");
    assert.equal(sim.placementOf("vad"), "cpu");
    assert.equal(
      scheduler.model("vad").cpuReason,
      "vad ran out of GPU memory and no idle pipeline is left to evict",
    );
  } finally {
    scheduler.close();
    await server.shutdown();
  }
});
