/**
 * Bounded connections in front of `Deno.serve`, which has no header or idle timeout of
 * its own and ended the process when an accept failed with EMFILE (issue 20 finding 3:
 * 233 idle connections at a 256-descriptor limit). Headroom accepts TCP itself
 * (`Deno.listen`) and hands each connection, byte for byte, to `Deno.serve` on a private
 * Unix socket, with:
 * - a cap on open connections below the descriptor limit: past it a new connection gets a
 *   503 and is closed, and the service goes on;
 * - a header deadline: the first request's headers must arrive within `headerTimeoutMs`;
 * - an idle deadline: a connection silent both ways for `idleTimeoutMs` (keep-alive idle,
 *   a stalled body) is closed. Streams stay open while they send (SSE heartbeats, chunks);
 * - an accept that fails (EMFILE, ENFILE) waits a moment and goes on instead of throwing.
 * @module
 */

/** The limits a guarded listener enforces. */
export interface ConnectionLimits {
  maxConnections: number;
  headerTimeoutMs: number;
  idleTimeoutMs: number;
}

/** A listening guarded server. */
export interface GuardedServer {
  addr: Deno.NetAddr;
  /** Connections open now. */
  readonly open: number;
  /** Connections refused at the cap since start. */
  readonly refused: number;
  /** Stops accepting, lets in-flight requests finish (the inner server's shutdown), closes the rest. */
  shutdown(): Promise<void>;
  /** Settles when the server has stopped. */
  finished: Promise<void>;
}

/** Descriptors each guarded connection holds: the client's, ours to the inner server, its accept. */
export const DESCRIPTORS_PER_CONNECTION = 3;
/** Descriptors kept free beyond those open at start, for models, workers and refusals. */
export const DESCRIPTOR_RESERVE = 64;
/** Refusals (503 being written) at once; past it a connection over the cap is closed unanswered. */
const MAX_REFUSALS_IN_FLIGHT = 8;

/** Descriptors this process holds now (Linux: /proc/self/fd), or 64 where unknown. */
export function openDescriptors(): number {
  try {
    let n = 0;
    for (const _ of Deno.readDirSync("/proc/self/fd")) n++;
    return n;
  } catch {
    return 64;
  }
}

/**
 * The connection cap for a descriptor limit: what fits beside the descriptors open now
 * and the reserve, at least 8.
 */
export function connectionCapFor(fileLimit: number, openNow = openDescriptors()): number {
  const free = fileLimit - openNow - DESCRIPTOR_RESERVE - MAX_REFUSALS_IN_FLIGHT;
  return Math.max(8, Math.floor(free / DESCRIPTORS_PER_CONNECTION));
}

const REFUSAL_BODY = '{"error":{"code":"too_many_connections","message":"The server holds ' +
  'its most open connections (HEADROOM_MAX_CONNECTIONS); retry in a moment"}}';
const REFUSAL = new TextEncoder().encode(
  "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n" +
    `Connection: close\r\nContent-Length: ${REFUSAL_BODY.length}\r\n\r\n${REFUSAL_BODY}`,
);

/** Serves `handler` on `hostname:port` behind the limits. */
export async function serveGuarded(
  options: { hostname: string; port: number; limits: ConnectionLimits },
  handler: Deno.ServeHandler,
): Promise<GuardedServer> {
  const listener = Deno.listen({ hostname: options.hostname, port: options.port });
  const dir = await Deno.makeTempDir({ prefix: "headroom-sock-" });
  const path = `${dir}/http.sock`;
  const inner = Deno.serve({ path, onListen: () => {} }, handler);
  const { maxConnections, headerTimeoutMs, idleTimeoutMs } = options.limits;
  const live = new Map<Deno.Conn, Promise<void>>();
  let refused = 0;
  let refusing = 0;
  let stopping = false;

  const accepting = (async () => {
    while (!stopping) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (stopping || error instanceof Deno.errors.BadResource) break;
        await new Promise((resolve) => setTimeout(resolve, 50)); // EMFILE: wait, go on
        continue;
      }
      if (live.size >= maxConnections) {
        refused++;
        if (refusing >= MAX_REFUSALS_IN_FLIGHT) {
          closeQuietly(conn); // a flood: no descriptor is held for an answer
          continue;
        }
        refusing++;
        conn.write(REFUSAL).catch(() => {}).finally(() => {
          refusing--;
          closeQuietly(conn);
        });
        continue;
      }
      live.set(
        conn,
        relay(conn, path, headerTimeoutMs, idleTimeoutMs).finally(() => live.delete(conn)),
      );
    }
  })();

  const finished = (async () => {
    await inner.finished;
    await accepting;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  })();
  return {
    addr: listener.addr as Deno.NetAddr,
    get open() {
      return live.size;
    },
    get refused() {
      return refused;
    },
    async shutdown() {
      stopping = true;
      closeQuietly(listener);
      await inner.shutdown();
      // The inner server is done; let the relays pass on its last bytes (1 s at most).
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        Promise.all(live.values()),
        new Promise((resolve) => timer = setTimeout(resolve, 1000)),
      ]);
      clearTimeout(timer);
      for (const conn of live.keys()) closeQuietly(conn);
      await finished;
    },
    finished,
  };
}

/** Copies bytes both ways between a client and the inner server until either ends or a deadline passes. */
async function relay(
  client: Deno.Conn,
  path: string,
  headerTimeoutMs: number,
  idleTimeoutMs: number,
): Promise<void> {
  let upstream: Deno.UnixConn;
  try {
    upstream = await Deno.connect({ transport: "unix", path });
  } catch {
    closeQuietly(client);
    return;
  }
  let headersSeen = false;
  let matched = 0; // how much of the blank line ending the first request's headers has come
  const close = () => {
    clearTimeout(header);
    clearTimeout(idle);
    closeQuietly(client);
    closeQuietly(upstream);
  };
  const header = setTimeout(() => {
    if (!headersSeen) close();
  }, headerTimeoutMs);
  // One idle timer per quiet spell, not one per chunk: each chunk only notes the time, and
  // the timer, when it fires, closes the connection or waits out the rest of the spell.
  let lastActive = performance.now();
  const checkIdle = () => {
    const quiet = performance.now() - lastActive;
    if (quiet >= idleTimeoutMs) close();
    else idle = setTimeout(checkIdle, idleTimeoutMs - quiet);
  };
  let idle = setTimeout(checkIdle, idleTimeoutMs);
  const active = () => {
    lastActive = performance.now();
  };
  const pump = async (from: Deno.Conn, to: Deno.Conn, fromClient: boolean) => {
    const buffer = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await from.read(buffer);
        if (n === null) break;
        active();
        const chunk = buffer.subarray(0, n);
        if (fromClient && !headersSeen) {
          matched = headerEndProgress(chunk, matched);
          if (matched === HEADER_END.length) {
            headersSeen = true;
            clearTimeout(header);
          }
        }
        let written = 0;
        while (written < n) written += await to.write(chunk.subarray(written));
      }
      if (fromClient) await upstream.closeWrite().catch(() => {});
      else close();
    } catch {
      close();
    }
  };
  await Promise.all([pump(client, upstream, true), pump(upstream, client, false)]);
  close();
}

/** The blank line that ends a request's headers. */
const HEADER_END = [13, 10, 13, 10];

/**
 * How much of the blank line ending a request's headers ("\r\n\r\n") a byte stream has
 * matched after `chunk`, given `matched` before it: 4 once the headers have ended. Reads
 * only up to that point, so a large body after the headers costs nothing.
 */
export function headerEndProgress(chunk: Uint8Array, matched: number): number {
  for (let i = 0; i < chunk.length && matched < HEADER_END.length; i++) {
    const byte = chunk[i];
    matched = byte === HEADER_END[matched] ? matched + 1 : byte === 13 ? 1 : 0;
  }
  return matched;
}

function closeQuietly(resource: { close(): void }): void {
  try {
    resource.close();
  } catch {
    // already closed
  }
}
