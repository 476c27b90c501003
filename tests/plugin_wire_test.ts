/**
 * The host ↔ plugin-process frames (workers/plugin_wire.ts): typed arrays travel as raw
 * bytes and come back as the same type and values, in small and large frames split
 * across chunks anywhere; what a hostile plugin could write instead (a length past the
 * limit, a byte table that does not fit, an unknown array type) is a FrameError.
 */
import assert from "node:assert/strict";
import { encodeFrame, FrameError, MAX_FRAME_BYTES, readFrames } from "../workers/plugin_wire.ts";

function streamOf(bytes: Uint8Array, chunk: number): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      for (let o = 0; o < bytes.length; o += chunk) controller.enqueue(bytes.slice(o, o + chunk));
      controller.close();
    },
  });
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

async function readAll(bytes: Uint8Array, chunk: number): Promise<unknown[]> {
  const out: unknown[] = [];
  for await (const message of readFrames(streamOf(bytes, chunk))) out.push(message);
  return out;
}

Deno.test("plugin frames - typed arrays round trip by type and value, split across chunks anywhere", async () => {
  const small = {
    type: "infer",
    call: 7,
    feeds: { x: { type: "float32", dims: [3], data: new Float32Array([1.5, -2, 3]) } },
    ids: new BigInt64Array([1n, -2n]),
    image: new Uint8Array([1, 2, 3]).subarray(1),
  };
  const large = { big: Float32Array.from({ length: 70_000 }, (_, i) => i) };
  const bytes = concat([...encodeFrame(small), ...encodeFrame(large), ...encodeFrame(small)]);
  for (const chunk of [13, 4093, 65536, bytes.length]) {
    const [a, b, c] = await readAll(bytes, chunk) as [typeof small, typeof large, typeof small];
    assert.deepEqual(a, small, `chunks of ${chunk}`);
    assert.ok(a.feeds.x.data instanceof Float32Array);
    assert.deepEqual(a.image, new Uint8Array([2, 3]));
    assert.ok(b.big instanceof Float32Array);
    assert.equal(b.big.length, 70_000);
    assert.equal(b.big[69_999], 69_999);
    assert.deepEqual(c, small);
  }
});

Deno.test("plugin frames - an oversize length, a table that does not fit and an unknown type are FrameErrors", async () => {
  const oversize = new Uint8Array(8);
  new DataView(oversize.buffer).setUint32(0, MAX_FRAME_BYTES, true);
  await assert.rejects(readAll(oversize, 8), FrameError);

  const forge = (table: unknown, extra = 0) => {
    const envelope = new TextEncoder().encode(JSON.stringify({ m: "{}", s: table }));
    const out = new Uint8Array(8 + envelope.length + extra);
    const view = new DataView(out.buffer);
    view.setUint32(0, 4 + envelope.length + extra, true);
    view.setUint32(4, envelope.length, true);
    out.set(envelope, 8);
    return out;
  };
  await assert.rejects(readAll(forge([["Float32Array", 1 << 20]]), 64), /does not fit/);
  await assert.rejects(readAll(forge([["SharedArrayBuffer", 0]]), 64), /unknown array type/);
  await assert.rejects(readAll(forge([], 3), 64), /bytes its table does not name/);
  await assert.rejects(readAll(encodeFrame({ a: 1 })[0].slice(0, 10), 4), /ended inside a frame/);
});
