/**
 * Hostile images for the decoder tests, built without holding what they inflate to:
 * PNG decompression bombs (plain and interlaced: a small file whose zlib stream inflates
 * to many times what its header allows), a JPEG whose frame declares 15 components of
 * 4096×4096 (jpeg-js allocates blocks for each at the frame header), and corrupt files
 * that carry only a signature.
 * @module
 */
import { Buffer } from "node:buffer";
import zlib from "node:zlib";

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  out.set(new TextEncoder().encode(type), 4);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/**
 * A valid zlib stream of `mib` MiB of zero bytes, made of one sync-flushed 1 MiB block
 * repeated (zeros reference only zeros, so the copies chain), about 1 KiB per MiB.
 */
function zeroStream(mib: number): Uint8Array {
  const block = zlib.deflateRawSync(Buffer.alloc(2 ** 20), {
    level: 9,
    finishFlush: zlib.constants.Z_SYNC_FLUSH,
  });
  const length = mib * 2 ** 20;
  const out = new Uint8Array(2 + block.length * mib + 2 + 4);
  out.set([0x78, 0xda]);
  for (let i = 0; i < mib; i++) out.set(block, 2 + i * block.length);
  const end = 2 + block.length * mib;
  out.set([0x03, 0x00], end); // a final, empty fixed-Huffman block
  new DataView(out.buffer).setUint32(end + 2, (((length % 65521) << 16) | 1) >>> 0); // adler32
  return out;
}

/** An 8-bit RGBA PNG of `width`×`height` whose image data inflates to `mib` MiB of zeros. */
export function pngBomb(
  options: { width: number; height: number; interlaced: boolean; mib: number },
): Uint8Array<ArrayBuffer> {
  const ihdr = new Uint8Array(13);
  const view = new DataView(ihdr.buffer);
  view.setUint32(0, options.width);
  view.setUint32(4, options.height);
  ihdr.set([8, 6, 0, 0, options.interlaced ? 1 : 0], 8);
  return concat([
    Uint8Array.from(PNG_SIGNATURE),
    chunk("IHDR", ihdr),
    chunk("IDAT", zeroStream(options.mib)),
    chunk("IEND", new Uint8Array(0)),
  ]);
}

/** A JPEG whose baseline frame declares `components` components of 4096×4096, then ends. */
export function jpegBomb(components = 15): Uint8Array<ArrayBuffer> {
  const sof = [0xff, 0xc0, 0, 8 + 3 * components, 8, 0x10, 0x00, 0x10, 0x00, components];
  for (let c = 1; c <= components; c++) sof.push(c, 0x11, 0);
  return Uint8Array.from([0xff, 0xd8, ...sof, 0xff, 0xd9]);
}

/** A PNG signature followed by text: the shape of issue 21's "corrupt PNG". */
export function corruptPng(): Uint8Array<ArrayBuffer> {
  return concat([
    Uint8Array.from(PNG_SIGNATURE),
    new TextEncoder().encode("not a png at all, only garbage after the signature"),
  ]);
}

function concat(parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** A JPEG start-of-image marker followed by text. */
export function corruptJpeg(): Uint8Array<ArrayBuffer> {
  return Uint8Array.from([0xff, 0xd8, 0xff, ...new TextEncoder().encode("garbage, no frame")]);
}

/** Peak growth of this process's RSS while `run` runs, sampled every 5 ms, in bytes. */
export async function peakRssGrowth<T>(
  run: () => Promise<T>,
): Promise<{ result: T; bytes: number }> {
  const start = Deno.memoryUsage().rss;
  let peak = start;
  const timer = setInterval(() => peak = Math.max(peak, Deno.memoryUsage().rss), 5);
  try {
    const result = await run();
    peak = Math.max(peak, Deno.memoryUsage().rss);
    return { result, bytes: peak - start };
  } finally {
    clearInterval(timer);
  }
}

/** A well-formed Adam7-interlaced 8-bit RGBA PNG of `rgba` (the decoder must still read it). */
export function interlacedPng(rgba: Uint8Array, width: number, height: number): Uint8Array {
  const passes = [[0, 8, 0, 8], [4, 8, 0, 8], [0, 4, 4, 8], [2, 4, 0, 4], [0, 2, 2, 4], [
    1,
    2,
    0,
    2,
  ], [
    0,
    1,
    1,
    2,
  ]];
  const raw: number[] = [];
  for (const [x0, dx, y0, dy] of passes) {
    for (let y = y0; y < height; y += dy) {
      if (x0 >= width) continue;
      raw.push(0); // filter: none
      for (let x = x0; x < width; x += dx) {
        raw.push(...rgba.subarray((y * width + x) * 4, (y * width + x) * 4 + 4));
      }
    }
  }
  const ihdr = new Uint8Array(13);
  new DataView(ihdr.buffer).setUint32(0, width);
  new DataView(ihdr.buffer).setUint32(4, height);
  ihdr.set([8, 6, 0, 0, 1], 8);
  return concat([
    Uint8Array.from(PNG_SIGNATURE),
    chunk("IHDR", ihdr),
    chunk("IDAT", zlib.deflateSync(Uint8Array.from(raw))),
    chunk("IEND", new Uint8Array(0)),
  ]);
}
