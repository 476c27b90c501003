/**
 * Image helpers shared by the OCR plugins: decode PNG/JPEG bytes to packed RGB (the
 * type sniffed from magic bytes, the header checked and the size held to the pixel limit
 * before any pixel is decoded, a PNG's data inflated with its output capped by that size), bilinear resize, crop of an axis-aligned or rotated box, and conversion to
 * a normalized NCHW tensor in the BGR channel order PaddleOCR was trained with.
 * @module
 */
import { Buffer } from "node:buffer";
import zlib from "node:zlib";
import jpeg from "jpeg-js";
import pngjs from "pngjs";
import { PluginInputError } from "../workers/plugin.ts";

/** Largest image (width × height) a plugin decodes by default: 16.7 MP (4096 × 4096). */
export const MAX_IMAGE_PIXELS = 4096 * 4096;

/** A decoded image: packed 8-bit RGB, row-major, `width * height * 3` bytes. */
export interface RgbImage {
  rgb: Uint8Array;
  width: number;
  height: number;
}

/** How a request may carry an image: encoded bytes, or pixels already decoded. */
export type ImageInput =
  | { image: Uint8Array }
  | {
    /** Packed 8-bit RGB (3 bytes per pixel) or RGBA (4, composited over white). */
    rgb: Uint8Array;
    width: number;
    height: number;
  };

/** An axis-aligned box in pixels of the original image. */
export interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** A point in pixel coordinates. */
export interface Point {
  x: number;
  y: number;
}

/** Which encoded format `bytes` holds, from its magic bytes; null for anything else. */
export function sniffImageType(bytes: Uint8Array): "png" | "jpeg" | null {
  const png = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (bytes.length >= 8 && png.every((b, i) => bytes[i] === b)) return "png";
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) {
    return "jpeg";
  }
  return null;
}

/** Names the first bytes of unrecognized input, for error messages. */
function describeBytes(bytes: Uint8Array): string {
  if (bytes.length === 0) return "0 bytes";
  const head = [...bytes.subarray(0, 8)].map((b) => b.toString(16).padStart(2, "0")).join(" ");
  const text = new TextDecoder("utf-8", { fatal: false }).decode(bytes.subarray(0, 16));
  const printable = /^[\x20-\x7e\s]+$/.test(text) ? ` ("${text.trim().slice(0, 16)}")` : "";
  return `${bytes.length} bytes starting ${head}${printable}`;
}

/** What a PNG's IHDR says, read and checked before any pixel data is touched. */
interface PngHeader {
  width: number;
  height: number;
  /** Bits per pixel (bit depth × channels). */
  bitsPerPixel: number;
  interlaced: boolean;
}

/** Channels per PNG color type (0 gray, 2 RGB, 3 palette, 4 gray + alpha, 6 RGBA). */
const PNG_CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
/** Bit depths the PNG spec allows per color type. */
const PNG_DEPTHS: Record<number, readonly number[]> = {
  0: [1, 2, 4, 8, 16],
  2: [8, 16],
  3: [1, 2, 4, 8],
  4: [8, 16],
  6: [8, 16],
};

/** Thrown for bytes that carry an image's signature but not a well-formed header. */
function notValid(type: "PNG" | "JPEG", bytes: Uint8Array, why: string): PluginInputError {
  return new PluginInputError(
    `The image is not a valid ${type} (${bytes.length} bytes): ${why}; send an uncorrupted ` +
      `PNG or JPEG file`,
  );
}

/** A PNG's IHDR, or null when the file ends before it; throws when it is malformed. */
function readPngHeader(bytes: Uint8Array): PngHeader | null {
  if (bytes.length < 33) return null; // signature 8 + length 4 + type 4 + IHDR 13 + CRC 4
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const type = String.fromCharCode(...bytes.subarray(12, 16));
  if (view.getUint32(8) !== 13 || type !== "IHDR") {
    throw notValid("PNG", bytes, "its first chunk is not a 13-byte IHDR");
  }
  const width = view.getUint32(16), height = view.getUint32(20);
  const depth = bytes[24], color = bytes[25], interlace = bytes[28];
  if (width === 0 || height === 0 || width > 2 ** 31 - 1 || height > 2 ** 31 - 1) {
    throw notValid("PNG", bytes, `its header gives the size ${width}x${height}`);
  }
  if (!(PNG_DEPTHS[color] ?? []).includes(depth)) {
    throw notValid("PNG", bytes, `color type ${color} with bit depth ${depth} does not exist`);
  }
  if (bytes[26] !== 0 || bytes[27] !== 0 || interlace > 1) {
    throw notValid("PNG", bytes, "its compression, filter or interlace method is unknown");
  }
  return { width, height, bitsPerPixel: depth * PNG_CHANNELS[color], interlaced: interlace === 1 };
}

/** The Adam7 passes: start and step in x and y. */
const ADAM7 = [
  [0, 8, 0, 8],
  [4, 8, 0, 8],
  [0, 4, 4, 8],
  [2, 4, 0, 4],
  [0, 2, 2, 4],
  [1, 2, 0, 2],
  [0, 1, 1, 2],
] as const;

/** Bytes the image data of `header` inflates to: rows of filter byte + packed pixels. */
function pngDataBytes(header: PngHeader): number {
  const rowBytes = (w: number) => 1 + Math.ceil((w * header.bitsPerPixel) / 8);
  if (!header.interlaced) return rowBytes(header.width) * header.height;
  let total = 0;
  for (const [x0, dx, y0, dy] of ADAM7) {
    const w = Math.ceil((header.width - x0) / dx), h = Math.ceil((header.height - y0) / dy);
    if (w > 0 && h > 0) total += rowBytes(w) * h;
  }
  return total;
}

/**
 * Inflates the PNG's IDAT chunks with the output capped at what its header allows, so a
 * decompression bomb (a small file that inflates to gigabytes; pngjs inflates interlaced
 * images with no cap) is refused after at most that many bytes. Throws a PluginInputError.
 */
function checkPngData(bytes: Uint8Array, header: PngHeader): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const parts: Uint8Array[] = [];
  for (let i = 8; i + 12 <= bytes.length;) {
    const length = view.getUint32(i);
    const type = String.fromCharCode(...bytes.subarray(i + 4, i + 8));
    if (i + 12 + length > bytes.length) break; // cut short: pngjs names it below
    if (type === "IDAT") parts.push(bytes.subarray(i + 8, i + 8 + length));
    if (type === "IEND") break;
    i += 12 + length;
  }
  const allowed = pngDataBytes(header);
  try {
    zlib.inflateSync(Buffer.concat(parts), { maxOutputLength: allowed });
  } catch (error) {
    if ((error as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") {
      throw new PluginInputError(
        `The PNG's image data inflates past the ${allowed} bytes its ${header.width}x` +
          `${header.height} header allows: a decompression bomb or a corrupt file`,
      );
    }
    // Other zlib errors (a cut or damaged stream) are named by the decoder's own message.
  }
}

/** The JPEG frame types jpeg-js decodes: baseline, extended and progressive DCT. */
const JPEG_DECODED_SOF = new Set([0xc0, 0xc1, 0xc2]);

/**
 * Width and height from a JPEG's first SOF marker, or null when the file ends before one;
 * throws for a malformed marker walk, a frame type jpeg-js cannot decode, or a component
 * count other than 1 (gray), 3 (YCbCr) or 4 (CMYK): jpeg-js allocates blocks for every
 * declared component at the SOF, so 15 components of 4096x4096 cost over a gigabyte.
 */
function jpegSize(bytes: Uint8Array): { width: number; height: number } | null {
  let i = 2;
  while (i + 9 < bytes.length) {
    if (bytes[i] !== 0xff) throw notValid("JPEG", bytes, `no marker at byte ${i}`);
    const marker = bytes[i + 1];
    if (marker === 0xff) {
      i++;
      continue;
    }
    if (marker < 0xc0 && marker !== 0x01) {
      throw notValid("JPEG", bytes, `byte ${i + 1} is no JPEG marker (0x${marker.toString(16)})`);
    }
    const length = (bytes[i + 2] << 8) | bytes[i + 3];
    const isSof = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 &&
      marker !== 0xcc;
    if (isSof) {
      if (!JPEG_DECODED_SOF.has(marker)) {
        throw notValid("JPEG", bytes, `frame type SOF${marker - 0xc0} is not decoded here`);
      }
      const components = bytes[i + 9];
      if (i + 10 <= bytes.length && ![1, 3, 4].includes(components)) {
        throw notValid("JPEG", bytes, `its frame declares ${components} color components`);
      }
      const size = {
        height: (bytes[i + 5] << 8) | bytes[i + 6],
        width: (bytes[i + 7] << 8) | bytes[i + 8],
      };
      if (size.width === 0 || size.height === 0) {
        throw notValid("JPEG", bytes, `its frame gives the size ${size.width}x${size.height}`);
      }
      return size;
    }
    if (marker === 0xd9 || marker === 0xda) {
      throw notValid("JPEG", bytes, "it has no frame header (SOF) before its image data");
    }
    if (length < 2) throw notValid("JPEG", bytes, `a segment at byte ${i} has length ${length}`);
    i += 2 + length;
  }
  return null;
}

/**
 * The memory jpeg-js may account for an image of `maxPixels`: 3 components of 32-bit
 * blocks (12 B/px), their 8-bit planes (3) and the RGBA output (4), with room, plus the file.
 */
function jpegMemoryMiB(maxPixels: number, fileBytes: number): number {
  return Math.ceil((maxPixels * 20 + fileBytes) / 2 ** 20) + 8;
}

/** Throws when an image of this size is empty or larger than `maxPixels`. */
function checkSize(width: number, height: number, maxPixels: number, what: string): void {
  if (!(width > 0 && height > 0)) {
    throw new PluginInputError(`Image ${what} has an empty size ${width}x${height}`);
  }
  if (width * height > maxPixels) {
    throw new PluginInputError(
      `Image is too large: ${width}x${height} (${width * height} pixels) exceeds the limit of ` +
        `${maxPixels} pixels; scale it down before sending`,
    );
  }
}

/** Packs RGBA into RGB, compositing over white so transparent text backgrounds read as paper. */
function rgbaToRgb(rgba: Uint8Array, width: number, height: number): Uint8Array {
  const n = width * height;
  const rgb = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    const a = rgba[i * 4 + 3];
    for (let c = 0; c < 3; c++) {
      const v = rgba[i * 4 + c];
      rgb[i * 3 + c] = a === 255 ? v : Math.round((v * a + 255 * (255 - a)) / 255);
    }
  }
  return rgb;
}

/** Decodes PNG or JPEG bytes to RGB; anything else, a truncated file or an oversize image throws a PluginInputError. */
export function decodeImage(bytes: Uint8Array, maxPixels = MAX_IMAGE_PIXELS): RgbImage {
  if (!(bytes instanceof Uint8Array)) {
    throw new PluginInputError(
      `Expected "image" to be PNG or JPEG bytes (a Uint8Array), got ${typeName(bytes)}`,
    );
  }
  const type = sniffImageType(bytes);
  if (type === null) {
    throw new PluginInputError(
      `Unsupported image format: expected PNG or JPEG bytes, got ${describeBytes(bytes)}`,
    );
  }
  const png = type === "png" ? readPngHeader(bytes) : null;
  const size = type === "png" ? png : jpegSize(bytes);
  if (size === null) {
    throw new PluginInputError(
      `The ${type.toUpperCase()} is truncated: its header ends after ${bytes.length} bytes`,
    );
  }
  checkSize(size.width, size.height, maxPixels, `header of the ${type.toUpperCase()}`);
  if (png !== null) checkPngData(bytes, png);
  try {
    if (type === "png") {
      const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      const png = pngjs.PNG.sync.read(buffer);
      const rgba = new Uint8Array(png.data.buffer, png.data.byteOffset, png.data.byteLength);
      return { rgb: rgbaToRgb(rgba, png.width, png.height), width: png.width, height: png.height };
    }
    const decoded = jpeg.decode(bytes, {
      useTArray: true,
      formatAsRGBA: true,
      maxResolutionInMP: maxPixels / 1e6,
      maxMemoryUsageInMB: jpegMemoryMiB(maxPixels, bytes.length),
    });
    return {
      rgb: rgbaToRgb(decoded.data, decoded.width, decoded.height),
      width: decoded.width,
      height: decoded.height,
    };
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error);
    throw new PluginInputError(
      `The ${type.toUpperCase()} (${bytes.length} bytes) is truncated or corrupt: ${detail}`,
    );
  }
}

/** A short name of a value's type for error messages. */
function typeName(value: unknown): string {
  if (value === null) return "null";
  if (typeof value !== "object") return typeof value;
  return (value as object).constructor?.name ?? "object";
}

/** Turns a request's `{image}` or `{rgb, width, height}` into a checked RgbImage. */
export function imageFromInput(input: unknown, maxPixels = MAX_IMAGE_PIXELS): RgbImage {
  if (typeof input !== "object" || input === null) {
    throw new PluginInputError(
      `Expected an object with "image" (PNG/JPEG bytes) or "rgb", "width", "height", got ${
        typeName(input)
      }`,
    );
  }
  const record = input as Record<string, unknown>;
  if (record.image !== undefined) return decodeImage(record.image as Uint8Array, maxPixels);
  const { rgb, width, height } = record;
  if (!(rgb instanceof Uint8Array)) {
    throw new PluginInputError(
      `Expected "image" (PNG/JPEG bytes) or "rgb" (a Uint8Array of pixels), got ${
        rgb === undefined ? "neither" : `"rgb" as ${typeName(rgb)}`
      }`,
    );
  }
  if (!Number.isInteger(width) || !Number.isInteger(height)) {
    throw new PluginInputError(
      `"width" and "height" must be integers with "rgb", got ${width} and ${height}`,
    );
  }
  const w = width as number, h = height as number;
  checkSize(w, h, maxPixels, '"rgb"');
  if (rgb.length === w * h * 3) return { rgb, width: w, height: h };
  if (rgb.length === w * h * 4) return { rgb: rgbaToRgb(rgb, w, h), width: w, height: h };
  throw new PluginInputError(
    `"rgb" has ${rgb.length} bytes; a ${w}x${h} image needs ${w * h * 3} (RGB) or ${
      w * h * 4
    } (RGBA)`,
  );
}

/** Resizes with bilinear interpolation (pixel centers aligned, as OpenCV's INTER_LINEAR). */
export function resizeBilinear(image: RgbImage, width: number, height: number): RgbImage {
  const { width: w, height: h } = image;
  return sampleQuad(
    image,
    [
      { x: 0, y: 0 },
      { x: w, y: 0 },
      { x: w, y: h },
      { x: 0, y: h },
    ],
    width,
    height,
  );
}

/**
 * Samples the quadrilateral `quad` (top-left, top-right, bottom-right, bottom-left; a
 * parallelogram, such as a rotated rectangle) into a `width × height` image with bilinear
 * interpolation. Crop and resize in one pass; samples outside the image read as white.
 */
export function sampleQuad(
  image: RgbImage,
  quad: readonly [Point, Point, Point, Point],
  width: number,
  height: number,
): RgbImage {
  const { rgb: src, width: sw, height: sh } = image;
  const out = new Uint8Array(width * height * 3);
  const [p0, p1, , p3] = quad;
  // Unit steps along the output's x and y axes, in source pixels.
  const ux = (p1.x - p0.x) / width, uy = (p1.y - p0.y) / width;
  const vx = (p3.x - p0.x) / height, vy = (p3.y - p0.y) / height;
  for (let j = 0; j < height; j++) {
    for (let i = 0; i < width; i++) {
      // Pixel centers: output (i + 0.5, j + 0.5) maps to a source point; minus 0.5 to index.
      const sx = p0.x + ux * (i + 0.5) + vx * (j + 0.5) - 0.5;
      const sy = p0.y + uy * (i + 0.5) + vy * (j + 0.5) - 0.5;
      const x0 = Math.floor(sx), y0 = Math.floor(sy);
      const fx = sx - x0, fy = sy - y0;
      const o = (j * width + i) * 3;
      for (let c = 0; c < 3; c++) {
        const a = pixel(src, sw, sh, x0, y0, c), b = pixel(src, sw, sh, x0 + 1, y0, c);
        const d = pixel(src, sw, sh, x0, y0 + 1, c), e = pixel(src, sw, sh, x0 + 1, y0 + 1, c);
        const top = a + (b - a) * fx, bottom = d + (e - d) * fx;
        out[o + c] = Math.round(top + (bottom - top) * fy);
      }
    }
  }
  return { rgb: out, width, height };
}

/** One channel of a pixel, edges replicated inside a one-pixel border, white beyond it. */
function pixel(src: Uint8Array, w: number, h: number, x: number, y: number, c: number): number {
  if (x < -1 || y < -1 || x > w || y > h) return 255;
  const cx = x < 0 ? 0 : x >= w ? w - 1 : x;
  const cy = y < 0 ? 0 : y >= h ? h - 1 : y;
  return src[(cy * w + cx) * 3 + c];
}

/**
 * Corners of a box in reading order (top-left, top-right, bottom-right, bottom-left of
 * the crop to make). `vertical` reads a tall box as text turned 90° (PaddleOCR rotates
 * crops at least 1.5 times taller than wide counter-clockwise); `flipped` turns the crop
 * 180° (text the angle classifier found upside down).
 */
export function boxQuad(box: Box, vertical = false, flipped = false): [Point, Point, Point, Point] {
  const tl = { x: box.x, y: box.y }, tr = { x: box.x + box.width, y: box.y };
  const br = { x: box.x + box.width, y: box.y + box.height };
  const bl = { x: box.x, y: box.y + box.height };
  const quad: [Point, Point, Point, Point] = vertical ? [tr, br, bl, tl] : [tl, tr, br, bl];
  return flipped ? [quad[2], quad[3], quad[0], quad[1]] : quad;
}

/** Whether PaddleOCR would read this box as vertical text (height ≥ 1.5 × width). */
export function isVertical(box: Box): boolean {
  return box.height >= 1.5 * box.width;
}

/** Checks a request's `boxes`: an array of `{x, y, width, height}` with finite numbers and a positive size. */
export function parseBoxes(value: unknown): Box[] {
  if (!Array.isArray(value)) {
    throw new PluginInputError(
      `Expected "boxes" to be an array of {x, y, width, height}, got ${typeName(value)}`,
    );
  }
  return value.map((item, i) => {
    const b = (item ?? {}) as Record<string, unknown>;
    const nums = [b.x, b.y, b.width, b.height];
    if (!nums.every((n) => typeof n === "number" && Number.isFinite(n))) {
      throw new PluginInputError(
        `boxes[${i}] must have numeric x, y, width, height, got ${JSON.stringify(item)}`,
      );
    }
    const box = {
      x: b.x as number,
      y: b.y as number,
      width: b.width as number,
      height: b.height as number,
    };
    if (box.width <= 0 || box.height <= 0) {
      throw new PluginInputError(`boxes[${i}] has an empty size ${box.width}x${box.height}`);
    }
    return box;
  });
}

/** Crops `box` (axis-aligned, clipped to the image) to a new image at its own resolution. */
export function cropBox(image: RgbImage, box: Box): RgbImage {
  const x0 = Math.max(0, Math.floor(box.x)), y0 = Math.max(0, Math.floor(box.y));
  const x1 = Math.min(image.width, Math.ceil(box.x + box.width));
  const y1 = Math.min(image.height, Math.ceil(box.y + box.height));
  const w = Math.max(0, x1 - x0), h = Math.max(0, y1 - y0);
  const rgb = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    const start = ((y0 + y) * image.width + x0) * 3;
    rgb.set(image.rgb.subarray(start, start + w * 3), y * w * 3);
  }
  return { rgb, width: w, height: h };
}

/**
 * Writes `image` into a float32 NCHW batch slot in BGR order (the order PaddleOCR's
 * OpenCV loader gives its models): `(v / 255 - mean[c]) / std[c]`; columns past the
 * image's width up to `slotWidth` stay 0 (PaddleOCR's right padding).
 */
export function writeNchw(
  target: Float32Array,
  batchIndex: number,
  image: RgbImage,
  slotWidth: number,
  mean: readonly [number, number, number],
  std: readonly [number, number, number],
): void {
  const { rgb, width, height } = image;
  const plane = height * slotWidth;
  const base = batchIndex * 3 * plane;
  for (let c = 0; c < 3; c++) {
    const source = 2 - c; // BGR: tensor channel 0 is blue.
    const m = mean[c], s = std[c];
    for (let y = 0; y < height; y++) {
      const row = base + c * plane + y * slotWidth;
      for (let x = 0; x < width; x++) {
        target[row + x] = (rgb[(y * width + x) * 3 + source] / 255 - m) / s;
      }
    }
  }
}

/** 5×7 bitmaps of the letters of "HEADROOM", one string of 0/1 per row. */
const PROBE_GLYPHS: Record<string, string[]> = {
  H: ["10001", "10001", "10001", "11111", "10001", "10001", "10001"],
  E: ["11111", "10000", "10000", "11110", "10000", "10000", "11111"],
  A: ["01110", "10001", "10001", "11111", "10001", "10001", "10001"],
  D: ["11110", "10001", "10001", "10001", "10001", "10001", "11110"],
  R: ["11110", "10001", "10001", "11110", "10100", "10010", "10001"],
  O: ["01110", "10001", "10001", "10001", "10001", "10001", "01110"],
  M: ["10001", "11011", "10101", "10101", "10001", "10001", "10001"],
};

/**
 * A small black-on-white image of the word "HEADROOM" in a 5×7 pixel font scaled 3×
 * (165 × 45 px), made without any decoder or font: the OCR plugins' probe input.
 */
export function probeTextImage(): RgbImage {
  const word = "HEADROOM", scale = 3, pad = 12;
  const width = pad * 2 + word.length * 6 * scale - scale, height = pad * 2 + 7 * scale;
  const rgb = new Uint8Array(width * height * 3).fill(255);
  [...word].forEach((letter, k) => {
    PROBE_GLYPHS[letter].forEach((row, gy) => {
      for (let gx = 0; gx < 5; gx++) {
        if (row[gx] !== "1") continue;
        for (let dy = 0; dy < scale; dy++) {
          const y = pad + gy * scale + dy, x = pad + (k * 6 + gx) * scale;
          rgb.fill(0, (y * width + x) * 3, (y * width + x + scale) * 3);
        }
      }
    });
  });
  return { rgb, width, height };
}
