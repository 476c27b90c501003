/**
 * A protobuf message read field by field from a file, without decoding it: a small window
 * over the file and a generator of each field's number, wire type and where its payload
 * sits, so a reader skips a multi-GB weight by not asking for it. The one reader under
 * the ONNX scans (external_data.ts) and the signature reader (signature.ts).
 * @module
 */

/** Reads a file at arbitrary offsets through a 64 KiB window (headers only, never payloads). */
export class Window {
  #file: Deno.FsFile;
  #buf = new Uint8Array(0);
  #start = 0;
  constructor(file: Deno.FsFile, readonly size: number) {
    this.#file = file;
  }

  /** The byte at offset `at`; RangeError past the end. */
  async byte(at: number): Promise<number> {
    if (at >= this.size) throw new RangeError("past the end");
    if (at < this.#start || at >= this.#start + this.#buf.length) {
      const length = Math.min(64 * 1024, this.size - at);
      const buf = new Uint8Array(length);
      await this.#file.seek(at, Deno.SeekMode.Start);
      let got = 0;
      while (got < length) {
        const n = await this.#file.read(buf.subarray(got));
        if (n === null) break;
        got += n;
      }
      this.#buf = buf.subarray(0, got);
      this.#start = at;
      if (got === 0) throw new RangeError("past the end");
    }
    return this.#buf[at - this.#start];
  }

  /** `length` bytes from offset `at` (a small field's payload). */
  async bytes(at: number, length: number): Promise<Uint8Array> {
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i++) out[i] = await this.byte(at + i);
    return out;
  }
}

/** One protobuf field as {@link fields} yields it. */
export interface Field {
  field: number;
  wire: number;
  /** Varint value (wire 0), or payload length (wire 2). */
  value: number;
  /** Where the payload starts (wire 2), or the next field (others). */
  at: number;
  /** Where the next field starts. */
  next: number;
}

async function varint(w: Window, at: number): Promise<[number, number]> {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    const b = await w.byte(at + i);
    value += (b & 0x7f) * scale;
    scale *= 128;
    if ((b & 0x80) === 0) return [value, at + i + 1];
  }
  throw new RangeError("varint longer than 10 bytes");
}

/** Yields the fields of the message in [start, end). Throws RangeError on malformed bytes. */
export async function* fields(w: Window, start: number, end: number): AsyncGenerator<Field> {
  let at = start;
  while (at < end) {
    const [tag, afterTag] = await varint(w, at);
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    if (field === 0) throw new RangeError("field number 0");
    let value = 0;
    let next: number;
    if (wire === 0) {
      [value, next] = await varint(w, afterTag);
    } else if (wire === 1) next = afterTag + 8;
    else if (wire === 5) next = afterTag + 4;
    else if (wire === 2) {
      let payload: number;
      [value, payload] = await varint(w, afterTag);
      next = payload + value;
      if (next > end) throw new RangeError(`field ${field} runs past its message`);
      yield { field, wire, value, at: payload, next };
      at = next;
      continue;
    } else throw new RangeError(`wire type ${wire} (field ${field})`);
    if (next > end) throw new RangeError(`field ${field} runs past its message`);
    yield { field, wire, value, at: afterTag, next };
    at = next;
  }
}
