// A large JSON body is bounded while it streams (issue 20 finding 10): an infer body with
// more values than the tensors may hold is refused (413) as it arrives, before any parse,
// and /api/v1/health keeps answering quickly meanwhile. On main the 128 MiB body was parsed
// and validated first: 413 after 9.0 s, health stalled 8.8 s, +2 GB.
import assert from "node:assert/strict";
import { startServerProcess } from "../scripts/_lib/server_process.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
import { MAX_TENSOR_ELEMENTS } from "../server/http/tensors.ts";

/** A body `{"inputs":{"x":{"type":"float32","dims":[n],"data":[0,0,…]}}}` of `n` zeros, streamed. */
function zerosBody(n: number): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  const block = encoder.encode("0,".repeat(512 * 1024)); // 1 MiB: 512 Ki values
  let left = n;
  let started = false;
  return new ReadableStream({
    pull(controller) {
      if (!started) {
        started = true;
        controller.enqueue(
          encoder.encode(`{"inputs":{"x":{"type":"float32","dims":[${n}],"data":[`),
        );
        return;
      }
      if (left <= 0) {
        controller.enqueue(encoder.encode("0]}}}"));
        controller.close();
        return;
      }
      const values = Math.min(left, 512 * 1024);
      controller.enqueue(values === 512 * 1024 ? block : block.subarray(0, values * 2));
      left -= values;
    },
  });
}

Deno.test("json - a body of too many values is refused while it streams; health stays quick", async () => {
  // The server in its own process, so the client's work does not count against it.
  const dir = await Deno.makeTempDir({ prefix: "headroom-json-" });
  await Deno.writeTextFile(
    `${dir}/models.json`,
    JSON.stringify({ models: [{ id: "tiny", source: "synthetic:64KiB" }] }),
  );
  const headroom = await serveModelsIn(dir);
  try {
    let worst = 0;
    let polling = true;
    const poll = async () => {
      while (polling) {
        const t0 = performance.now();
        const health = await fetch(`${headroom.url}/api/v1/health`);
        await health.body?.cancel();
        worst = Math.max(worst, performance.now() - t0);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    };
    // The machine's own noise first (shared cores): the slowest health answer in 2 s, idle.
    let poller = poll();
    await new Promise((resolve) => setTimeout(resolve, 2000));
    polling = false;
    await poller;
    const idleWorst = worst;
    worst = 0;
    polling = true;
    poller = poll();
    const t0 = performance.now();
    const answer = await fetch(`${headroom.url}/api/v1/pipelines/tiny/infer`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: zerosBody(MAX_TENSOR_ELEMENTS + 4 * 2 ** 20), // ~136 MiB of "0,"
    }).catch((error) => error as Error);
    const ms = performance.now() - t0;
    polling = false;
    await poller;
    assert.ok(!(answer instanceof Error), `the request failed: ${answer}`);
    const body = await answer.json();
    assert.equal(answer.status, 413, JSON.stringify(body));
    assert.match(body.error.message, /more than \d+ values \(counted while it arrived\)/);
    console.log(
      `413 after ${ms.toFixed(0)} ms; slowest health answer meanwhile ${worst.toFixed(0)} ms ` +
        `(idle: ${idleWorst.toFixed(0)} ms)`,
    );
    // ~100 ms on a quiet machine; the bound allows for cores shared with other work.
    const bound = Math.max(300, 4 * idleWorst);
    assert.ok(worst < bound, `health took ${worst.toFixed(0)} ms while the body streamed`);
  } finally {
    await headroom.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

/** A service in its own process with a plain model and the echo chat plugin, both loaded. */
async function bodiesService(dir: string) {
  await Deno.writeTextFile(
    `${dir}/models.json`,
    JSON.stringify({
      models: [
        { id: "tiny", source: "synthetic:64KiB" },
        {
          id: "echo",
          source: "synthetic:64KiB",
          plugin: new URL("./fixtures/echo_chat_plugin.ts", import.meta.url).pathname,
          tags: ["chat"],
        },
      ],
    }),
  );
  const headroom = await serveModelsIn(dir);
  for (const id of ["tiny", "echo"]) {
    const loaded = await fetch(`${headroom.url}/api/v1/models/${id}/load`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ device: "cpu" }),
    });
    assert.equal(loaded.status, 200, await loaded.text());
  }
  return headroom;
}

/**
 * Polls /api/v1/health every 20 ms from a worker of its own until stopped; answers the
 * slowest answer's time. Its own thread: sending large bodies holds the sender's event
 * loop for hundreds of ms, which a poller beside it would count as the server's.
 */
function healthPoller(url: string): { stop(): Promise<number> } {
  const source = `
    let polling = true;
    let worst = 0;
    self.onmessage = () => { polling = false; };
    while (polling) {
      const t0 = performance.now();
      const health = await fetch(${JSON.stringify(`${url}/api/v1/health`)});
      await health.body?.cancel();
      worst = Math.max(worst, performance.now() - t0);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    self.postMessage(worst);
  `;
  const worker = new Worker(`data:application/javascript,${encodeURIComponent(source)}`, {
    type: "module",
  });
  return {
    async stop() {
      const answer = new Promise<number>((resolve) => {
        worker.onmessage = (event) => resolve(event.data);
      });
      worker.postMessage("stop");
      const worst = await answer;
      worker.terminate();
      return worst;
    },
  };
}

// Issue 20 item 2, in the limits: a 64 MiB infer body and three 20 MiB chat images at once.
// Before the body workers (server/http/body_pool.ts) the slowest health answer meanwhile was
// 1.7–2.0 s on 2 shared cores (this test, two runs); with them 47–93 ms (three runs). That the main thread
// does not parse or decode them at all is asserted in tests/body_parse_test.ts.
Deno.test("json - large in-limit bodies (a 64 MiB infer body, three 20 MiB chat images) are parsed and decoded off the main thread; health stays quick", async () => {
  const dir = await Deno.makeTempDir({ prefix: "headroom-bodies-" });
  const headroom = await bodiesService(dir);
  try {
    // Float text as clients send it: ~10 bytes a value, 6.7 M values (under the element limit).
    const block = "0.1234567,".repeat(100_000);
    const values = 6_700_000;
    const numbers = block.repeat(values / 100_000).slice(0, -1);
    // dims that do not match its data: refused (400 naming the input) once it is parsed, so
    // the figure is the parse's, not a run's or a large answer's.
    const infer = new TextEncoder().encode(
      `{"inputs":{"x":{"type":"float32","dims":[${values + 1}],"data":[${numbers}]}}}`,
    );
    const image = new Uint8Array(20 * 2 ** 20);
    image.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    const chat = new TextEncoder().encode(JSON.stringify({
      model: "echo",
      messages: [{
        role: "user",
        content: [{
          type: "image_url",
          image_url: { url: `data:image/png;base64,${image.toBase64()}` },
        }],
      }],
    }));
    const idle = healthPoller(headroom.url);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const idleWorst = await idle.stop();
    const busy = healthPoller(headroom.url);
    const t0 = performance.now();
    const post = (path: string, body: Uint8Array<ArrayBuffer>) =>
      fetch(`${headroom.url}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
    const [inferred, ...chats] = await Promise.all([
      post("/api/v1/pipelines/tiny/infer", infer),
      post("/v1/chat/completions", chat),
      post("/v1/chat/completions", chat),
      post("/v1/chat/completions", chat),
    ]);
    const ms = performance.now() - t0;
    const worst = await busy.stop();
    const inferBody = await inferred.json();
    assert.equal(inferred.status, 400, JSON.stringify(inferBody));
    assert.match(
      inferBody.error.message,
      /input "x": dims \[\d+\] hold \d+ elements but data has 6700000/,
    );
    for (const answer of chats) {
      const body = await answer.json();
      assert.equal(answer.status, 200, JSON.stringify(body));
      assert.match(body.choices[0].message.content, /\[images: 20971520\]/);
    }
    console.log(
      `4 bodies (${(infer.length / 2 ** 20).toFixed(0)} MiB infer, 3 × ${
        (chat.length / 2 ** 20).toFixed(0)
      } MiB chat) answered in ${ms.toFixed(0)} ms; slowest health answer meanwhile ${
        worst.toFixed(0)
      } ms (idle: ${idleWorst.toFixed(0)} ms)`,
    );
    const bound = Math.max(300, 4 * idleWorst);
    assert.ok(worst < bound, `health took ${worst.toFixed(0)} ms while the bodies were read`);
  } finally {
    await headroom.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

/** Headroom in its own process on the CPU, serving `dir`/models.json with `dir` as its data dir. */
function serveModelsIn(dir: string) {
  return startServerProcess({
    args: [
      "run",
      "-A",
      MAIN,
      "--gpu",
      "cpu",
      "--port",
      "0",
      "--data-dir",
      dir,
      "--models",
      `${dir}/models.json`,
    ],
  });
}
