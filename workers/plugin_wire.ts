/**
 * The frames between the host and a plugin process, over the child's stdin and stdout:
 * `[u32 body length]` then the body `[u32 JSON length][JSON][raw bytes of each typed
 * array]`, little endian, each array starting on an 8-byte boundary of the body. Typed
 * arrays (tensors, image bytes) travel as raw bytes, never as JSON numbers; everything
 * else is JSON. A large frame is read into a buffer of its own and its arrays are views
 * of it (no copy). Both sides decode what they read as untrusted: a frame that is too
 * large or malformed is a {@link FrameError}.
 * @module
 */

/** Largest frame either side accepts (a 4096 × 4096 RGB image is 48 MiB). */
export const MAX_FRAME_BYTES = 512 * 2 ** 20;

/** A frame that is too large or not well formed: the channel cannot be trusted after it. */
export class FrameError extends Error {
  override name = "FrameError";
}

/** The typed arrays that cross the channel as raw bytes, by constructor name. */
const ARRAYS = {
  Float32Array,
  Float64Array,
  Uint16Array,
  Int16Array,
  Int32Array,
  Uint32Array,
  BigInt64Array,
  Uint8Array,
  Int8Array,
  Uint8ClampedArray,
} as const;
type ArrayName = keyof typeof ARRAYS;

/** The JSON key that marks a typed array's place in a message. */
const SLOT = "$headroom.bytes";

function arrayName(view: ArrayBufferView): ArrayName {
  const name = view.constructor.name;
  if (Object.hasOwn(ARRAYS, name)) return name as ArrayName;
  throw new FrameError(`A ${name} cannot be sent to or from a plugin: use a typed array`);
}

/** Bytes after `offset` up to the next 8-byte boundary. */
const pad = (offset: number) => (8 - (offset % 8)) % 8;
const ZEROS = new Uint8Array(8);

/** A frame body at least this large is read into a buffer of its own. */
const OWN_BUFFER_BYTES = 256 * 1024;

/** Encodes one message as a frame: its parts, to be written in order (arrays are not copied). */
export function encodeFrame(message: unknown): Uint8Array[] {
  const views: ArrayBufferView[] = [];
  const json = JSON.stringify(message, (_key, value) => {
    if (ArrayBuffer.isView(value)) {
      views.push(value);
      return { [SLOT]: views.length - 1, array: arrayName(value) };
    }
    if (typeof value === "bigint") return Number(value);
    return value;
  });
  const envelope = new TextEncoder().encode(
    JSON.stringify({ m: json, s: views.map((v) => [arrayName(v), v.byteLength]) }),
  );
  let body = 4 + envelope.length;
  const parts: Uint8Array[] = [];
  const head = new Uint8Array(8 + envelope.length);
  head.set(envelope, 8);
  parts.push(head);
  for (const view of views) {
    if (pad(body)) parts.push(ZEROS.subarray(0, pad(body)));
    body += pad(body);
    parts.push(new Uint8Array(view.buffer, view.byteOffset, view.byteLength));
    body += view.byteLength;
  }
  if (body + 4 > MAX_FRAME_BYTES) {
    throw new FrameError(
      `A message of ${body + 4} bytes is above the ${MAX_FRAME_BYTES}-byte limit`,
    );
  }
  const header = new DataView(head.buffer);
  header.setUint32(0, body, true);
  header.setUint32(4, envelope.length, true);
  return parts;
}

/**
 * Decodes the body of one frame (what follows its length word). With `owned` (the body
 * is a buffer of its own that nothing reuses) its arrays are views of it; else copies.
 */
export function decodeFrame(body: Uint8Array, owned = false): unknown {
  if (body.length < 4) throw new FrameError("A frame shorter than its header");
  const jsonLength = new DataView(body.buffer, body.byteOffset, 4).getUint32(0, true);
  if (4 + jsonLength > body.length) throw new FrameError("A frame's JSON runs past its end");
  let envelope: { m: string; s: Array<[string, number]> };
  try {
    envelope = JSON.parse(new TextDecoder().decode(body.subarray(4, 4 + jsonLength)));
  } catch (error) {
    throw new FrameError(`A frame's JSON does not parse: ${(error as Error).message}`);
  }
  if (typeof envelope?.m !== "string" || !Array.isArray(envelope.s)) {
    throw new FrameError("A frame without its message and byte table");
  }
  const arrays: ArrayBufferView[] = [];
  let offset = 4 + jsonLength;
  for (const entry of envelope.s) {
    offset += pad(offset);
    const [name, size] = Array.isArray(entry) ? entry : [];
    if (typeof name !== "string" || !Object.hasOwn(ARRAYS, name)) {
      throw new FrameError(`A frame names an unknown array type ${JSON.stringify(name)}`);
    }
    const View = ARRAYS[name as ArrayName];
    const length = Number(size);
    if (
      !Number.isSafeInteger(length) || length < 0 || offset + length > body.length ||
      length % View.BYTES_PER_ELEMENT !== 0
    ) {
      throw new FrameError(`A frame's ${name} of ${length} bytes does not fit it`);
    }
    const aligned = (body.byteOffset + offset) % View.BYTES_PER_ELEMENT === 0;
    // A view of an owned body, else a copy (aligned, its own buffer, transferable on).
    arrays.push(
      owned && aligned
        ? new View(
          body.buffer as ArrayBuffer,
          body.byteOffset + offset,
          length / View.BYTES_PER_ELEMENT,
        )
        : new View(body.slice(offset, offset + length).buffer),
    );
    offset += length;
  }
  if (offset !== body.length) throw new FrameError("A frame has bytes its table does not name");
  try {
    return JSON.parse(envelope.m, (_key, value) => {
      if (value !== null && typeof value === "object" && Object.hasOwn(value, SLOT)) {
        const array = arrays[value[SLOT]];
        if (!array) throw new FrameError(`A frame refers to missing array ${value[SLOT]}`);
        return array;
      }
      return value;
    });
  } catch (error) {
    if (error instanceof FrameError) throw error;
    throw new FrameError(`A frame's message does not parse: ${(error as Error).message}`);
  }
}

/** Reads frames from a byte stream, one decoded message at a time. */
export async function* readFrames(
  stream: ReadableStream<Uint8Array>,
): AsyncGenerator<unknown, void, undefined> {
  let buffer = new Uint8Array(64 * 1024);
  let start = 0;
  let end = 0;
  /** A large frame's own buffer while it fills. */
  let own: { body: Uint8Array; filled: number } | null = null;
  for await (let chunk of stream) {
    if (own) {
      const take = Math.min(chunk.length, own.body.length - own.filled);
      own.body.set(chunk.subarray(0, take), own.filled);
      own.filled += take;
      chunk = chunk.subarray(take);
      if (own.filled < own.body.length) continue;
      const body = own.body;
      own = null;
      yield decodeFrame(body, true);
    }
    if (end + chunk.length > buffer.length) {
      const needed = end - start + chunk.length;
      const grown = needed > buffer.length
        ? new Uint8Array(Math.max(needed, buffer.length * 2))
        : buffer;
      grown.set(buffer.subarray(start, end));
      buffer = grown;
      end -= start;
      start = 0;
    }
    buffer.set(chunk, end);
    end += chunk.length;
    while (end - start >= 4) {
      const length = new DataView(buffer.buffer, start, 4).getUint32(0, true);
      if (length + 4 > MAX_FRAME_BYTES) {
        throw new FrameError(
          `A frame of ${length} bytes is above the ${MAX_FRAME_BYTES}-byte limit`,
        );
      }
      if (length >= OWN_BUFFER_BYTES && end - start < 4 + length) {
        // Read the rest straight into a buffer of its own.
        const body = new Uint8Array(length);
        body.set(buffer.subarray(start + 4, end));
        own = { body, filled: end - start - 4 };
        start = end = 0;
        break;
      }
      if (end - start < 4 + length) break;
      const body = buffer.subarray(start + 4, start + 4 + length);
      start += 4 + length;
      yield decodeFrame(body);
    }
    if (start === end) start = end = 0;
  }
  if (end !== start || own) throw new FrameError("The stream ended inside a frame");
}
