// Bounded connections (issue 20 finding 3): under a 256-descriptor limit, 300 connections
// that never finish their headers or send nothing are capped and then closed by the header
// deadline; the process stays up and answers. On main the accept failed with EMFILE and the
// process exited. Runs main.ts under `prlimit --nofile=256:256`.
import assert from "node:assert/strict";
import { startServerProcess } from "../scripts/_lib/server_process.ts";
import { headerEndProgress, serveGuarded } from "../server/connection_guard.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** True when `prlimit` (util-linux) is on this machine. */
function hasPrlimit(): boolean {
  try {
    return new Deno.Command("prlimit", { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

/** A read still pending on a connection (one read at a time per connection). */
const pendingReads = new Map<Deno.Conn, { buffer: Uint8Array; read: Promise<number | null> }>();

/** Reads what a connection gets within `ms`: the bytes, "closed", or "silent". */
async function readWithin(conn: Deno.Conn, ms: number): Promise<string> {
  let pending = pendingReads.get(conn);
  if (!pending) {
    const buffer = new Uint8Array(1024);
    pending = { buffer, read: conn.read(buffer).catch(() => null) };
    pendingReads.set(conn, pending);
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"silent">((resolve) =>
    timer = setTimeout(() => resolve("silent"), ms)
  );
  const n = await Promise.race([pending.read, timeout]);
  clearTimeout(timer);
  if (n === "silent") return n;
  pendingReads.delete(conn);
  return n === null ? "closed" : new TextDecoder().decode(pending.buffer.subarray(0, n));
}

Deno.test({
  name:
    "connections - slow-header and idle connections past a 256-fd limit: capped, closed, the service answers",
  ignore: Deno.build.os !== "linux" || !hasPrlimit(),
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "headroom-conns-" });
    const deno = Deno.execPath();
    await using server = await startServerProcess({
      args: [
        "eval",
        "--quiet",
        `
        const child = new Deno.Command("prlimit", {
          args: ["--nofile=256:256", ${JSON.stringify(deno)}, "run", "-A", ${JSON.stringify(MAIN)},
            "--gpu", "cpu", "--port", "0", "--data-dir", ${JSON.stringify(dir)},
            "--header-timeout", "2s", "--idle-timeout", "4s"],
          stdout: "inherit", stderr: "inherit",
        }).spawn();
        Deno.addSignalListener("SIGTERM", () => child.kill("SIGTERM"));
        Deno.exit((await child.status).code);`,
      ],
      timeoutMs: 60_000,
    });
    const { hostname, port } = new URL(server.url);
    const conns: Deno.Conn[] = [];
    try {
      for (let i = 0; i < 300; i++) {
        const conn = await Deno.connect({ hostname, port: Number(port) });
        // Half send a request line and one header, never the blank line; half send nothing.
        if (i % 2 === 0) {
          await conn.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n"));
        }
        conns.push(conn);
      }
      // Past the cap a connection is refused: a 503 (a few at a time) or closed at once.
      const answers = await Promise.all(conns.map((c) => readWithin(c, 1000)));
      const held = answers.filter((a) => a === "silent").length;
      const refused = answers.filter((a) => a === "closed" || a.includes("503")).length;
      assert.ok(
        answers.some((a) => a.includes("503") && a.includes("too_many_connections")),
        "some of the connections past the cap got the 503 that says why",
      );
      assert.ok(held < 128, `${held} connections held open under a 256-descriptor limit`);
      assert.equal(held + refused, conns.length);
      // The header deadline (2 s) closes every held one; the service is still there. (Each
      // is awaited, so the cap is free again before the keep-alive check below.)
      assert.ok(held > 0, "some connections were accepted");
      const heldConns = conns.filter((_, i) => answers[i] === "silent");
      const afterDeadline = await Promise.all(heldConns.map((c) => readWithin(c, 6000)));
      assert.deepEqual(
        afterDeadline.filter((a) => a !== "closed"),
        [],
        "every connection that never finished its headers is closed",
      );
      const health = await fetch(`${server.url}/api/v1/health`);
      assert.equal(health.status, 200);
      await health.body?.cancel();
      // A keep-alive connection stays while it keeps talking (gaps under the 4 s idle
      // timeout, 6 s in all), then is closed once it has been quiet past the timeout.
      const talker = await Deno.connect({ hostname, port: Number(port) });
      conns.push(talker);
      const request = new TextEncoder().encode(
        `GET /api/v1/health HTTP/1.1\r\nHost: ${hostname}:${port}\r\n\r\n`,
      );
      for (let i = 0; i < 3; i++) {
        if (i > 0) await new Promise((resolve) => setTimeout(resolve, 3000));
        await talker.write(request);
        const reply = await readWithin(talker, 2000);
        assert.match(reply, /^HTTP\/1\.1 200/, `request ${i + 1} got ${JSON.stringify(reply)}`);
      }
      assert.equal(await readWithin(talker, 6000), "closed", "closed once quiet past 4 s");
    } finally {
      for (const conn of conns) {
        try {
          conn.close();
        } catch { /* closed by the server */ }
      }
      await server.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("connections - the end of the headers is found wherever a chunk splits it", () => {
  const request = new TextEncoder().encode(
    `POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 10000\r\n\r\n${
      "1".repeat(10_000)
    }`,
  );
  const end = new TextDecoder().decode(request).indexOf("\r\n\r\n") + 4; // past the blank line
  for (let split = 0; split <= request.length; split += split < end + 8 ? 1 : 997) {
    const first = headerEndProgress(request.subarray(0, split), 0);
    const matched = headerEndProgress(request.subarray(split), first);
    assert.equal(matched, 4, `split at ${split}`);
    assert.equal(first === 4, split >= end, `split at ${split}: ended in the first part`);
  }
  const slow = new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\r\n");
  // "\r\n\r" then "\r\n": no blank line yet; the last "\r\n" may begin one.
  assert.equal(headerEndProgress(slow, 0), 2);
});

Deno.test(
  "connections - a keep-alive connection whose first request has a large body outlives the header deadline",
  async () => {
    // The guard once looked for the blank line only in the last 4 KiB of each chunk: a first
    // request with a 10 KB body in one chunk never counted as having sent its headers, every
    // later chunk was scanned again, and the connection was closed at the header deadline.
    const server = await serveGuarded({
      hostname: "127.0.0.1",
      port: 0,
      limits: { maxConnections: 16, headerTimeoutMs: 300, idleTimeoutMs: 10_000 },
    }, async (req) => new Response(`got ${(await req.arrayBuffer()).byteLength}`));
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
    try {
      const body = "1".repeat(10_000);
      const request = new TextEncoder().encode(
        `POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
      );
      await conn.write(request);
      assert.match(await readWithin(conn, 2000), /^HTTP\/1\.1 200[\s\S]*got 10000$/);
      await new Promise((resolve) => setTimeout(resolve, 600)); // past the header deadline
      await conn.write(request);
      assert.match(
        await readWithin(conn, 2000),
        /^HTTP\/1\.1 200[\s\S]*got 10000$/,
        "the second request on the connection is answered",
      );
    } finally {
      conn.close();
      await server.shutdown();
    }
  },
);
