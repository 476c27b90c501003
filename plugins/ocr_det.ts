/**
 * PaddleOCR v4 text detection (the `ocr-det` pipeline): an image in, text-line boxes
 * out. Pre-processing follows PaddleOCR's `DetResizeForTest` (longest side capped,
 * both sides rounded to multiples of 32) and ImageNet normalization; post-processing is
 * DB (threshold the probability map, one box per connected region, score it, unclip
 * it) with axis-aligned boxes.
 * @module
 */
import type { InferFn, PipelinePlugin } from "../workers/plugin.ts";
import { PluginInputError } from "../workers/plugin.ts";
import {
  type Box,
  imageFromInput,
  type ImageInput,
  probeTextImage,
  resizeBilinear,
  writeNchw,
} from "./_image.ts";
import { float32, floatOutput } from "./_tensor.ts";

/** What `ocr-det` takes: an image, and optionally the resize limit and unclip ratio. */
export type OcrDetInput = ImageInput & {
  /** Longest side the image is resized to (default 960; smaller images are not enlarged). */
  maxSide?: number;
  /** How far each region grows back out (default {@link DB_DEFAULTS}.unclipRatio). */
  unclipRatio?: number;
};

/** One detected text region, in pixels of the original image. */
export interface DetBox extends Box {
  /** Mean text probability inside the box (kept when above 0.6). */
  score: number;
}

/** What `ocr-det` returns: boxes sorted top-to-bottom, then left-to-right within a line. */
export interface OcrDetOutput {
  boxes: DetBox[];
  /** Size of the decoded image the boxes refer to. */
  width: number;
  height: number;
}

/** Settings of DB post-processing. */
export interface DbOptions {
  /** A pixel is text when its probability exceeds this. */
  threshold: number;
  /** A region is kept when its mean probability exceeds this. */
  boxThreshold: number;
  /** How far a region grows back out: area × ratio / perimeter on each side. */
  unclipRatio: number;
  /** Regions with a shorter side (in map pixels) are noise. */
  minSize: number;
  /** At most this many regions are considered. */
  maxCandidates: number;
}

/**
 * DB post-processing settings: PaddleOCR's defaults for PP-OCRv4, except the unclip
 * ratio. PaddleOCR's 1.5 gives crops so tight that the recognizer drops most spaces
 * between English words; 2.5 kept 69 of 72 rendered test lines exact (1.5 kept 28),
 * with line heights of 1.2 and 1.75.
 */
export const DB_DEFAULTS: DbOptions = {
  threshold: 0.3,
  boxThreshold: 0.6,
  unclipRatio: 2.5,
  minSize: 3,
  maxCandidates: 1000,
};

const MEAN = [0.485, 0.456, 0.406] as const;
const STD = [0.229, 0.224, 0.225] as const;

/** The input size PaddleOCR's `DetResizeForTest` (limit type "max") picks for an image. */
export function detInputSize(
  width: number,
  height: number,
  maxSide = 960,
): { width: number; height: number } {
  const ratio = Math.max(width, height) > maxSide ? maxSide / Math.max(width, height) : 1;
  const round32 = (v: number) => Math.max(Math.round(Math.trunc(v * ratio) / 32) * 32, 32);
  return { width: round32(width), height: round32(height) };
}

/**
 * DB post-processing of a probability map (`mapWidth × mapHeight`) into boxes scaled to
 * an image of `width × height`, sorted in reading order.
 */
export function dbBoxes(
  prob: Float32Array,
  mapWidth: number,
  mapHeight: number,
  width: number,
  height: number,
  options: Partial<DbOptions> = {},
): DetBox[] {
  const o = { ...DB_DEFAULTS, ...options };
  const n = mapWidth * mapHeight;
  const seen = new Uint8Array(n);
  for (let i = 0; i < n; i++) seen[i] = prob[i] > o.threshold ? 0 : 1;
  const stack = new Int32Array(n);
  const boxes: DetBox[] = [];
  const sx = width / mapWidth, sy = height / mapHeight;
  for (let start = 0; start < n && boxes.length < o.maxCandidates; start++) {
    if (seen[start]) continue;
    // Flood-fill one 8-connected region, tracking its bounding box.
    let top = 0, x0 = mapWidth, y0 = mapHeight, x1 = -1, y1 = -1;
    stack[top++] = start;
    seen[start] = 1;
    while (top > 0) {
      const p = stack[--top];
      const px = p % mapWidth, py = (p - px) / mapWidth;
      if (px < x0) x0 = px;
      if (px > x1) x1 = px;
      if (py < y0) y0 = py;
      if (py > y1) y1 = py;
      for (let dy = -1; dy <= 1; dy++) {
        const qy = py + dy;
        if (qy < 0 || qy >= mapHeight) continue;
        for (let dx = -1; dx <= 1; dx++) {
          const qx = px + dx;
          if (qx < 0 || qx >= mapWidth) continue;
          const q = qy * mapWidth + qx;
          if (!seen[q]) {
            seen[q] = 1;
            stack[top++] = q;
          }
        }
      }
    }
    // Box sides as OpenCV's minAreaRect measures them on the contour's pixel coordinates.
    const w = x1 - x0, h = y1 - y0;
    if (Math.min(w, h) < o.minSize) continue;
    let sum = 0;
    for (let y = y0; y <= y1; y++) {
      for (let x = x0; x <= x1; x++) sum += prob[y * mapWidth + x];
    }
    const score = sum / ((w + 1) * (h + 1));
    if (score < o.boxThreshold) continue;
    const d = (w * h * o.unclipRatio) / (2 * (w + h));
    if (Math.min(w, h) + 2 * d < o.minSize + 2) continue;
    const left = clamp(Math.round((x0 - d) * sx), 0, width);
    const right = clamp(Math.round((x1 + d) * sx), 0, width);
    const upper = clamp(Math.round((y0 - d) * sy), 0, height);
    const lower = clamp(Math.round((y1 + d) * sy), 0, height);
    if (right <= left || lower <= upper) continue;
    boxes.push({ x: left, y: upper, width: right - left, height: lower - upper, score });
  }
  return sortBoxes(boxes);
}

/** Reading order as PaddleOCR's `sorted_boxes`: by top then left, boxes within 10 px of a line's top ordered left to right. */
export function sortBoxes<T extends Box>(boxes: T[]): T[] {
  const sorted = [...boxes].sort((a, b) => a.y - b.y || a.x - b.x);
  for (let i = 0; i < sorted.length - 1; i++) {
    for (let j = i; j >= 0; j--) {
      const a = sorted[j], b = sorted[j + 1];
      if (Math.abs(b.y - a.y) < 10 && b.x < a.x) {
        sorted[j] = b;
        sorted[j + 1] = a;
      } else break;
    }
  }
  return sorted;
}

function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}

/** Runs detection on one image. */
export async function detect(input: OcrDetInput, infer: InferFn): Promise<OcrDetOutput> {
  const image = imageFromInput(input);
  const maxSide = input.maxSide ?? 960;
  if (!Number.isInteger(maxSide) || maxSide < 32 || maxSide > 4096) {
    throw new PluginInputError(`"maxSide" must be an integer from 32 to 4096, got ${maxSide}`);
  }
  const unclipRatio = input.unclipRatio ?? DB_DEFAULTS.unclipRatio;
  if (typeof unclipRatio !== "number" || !(unclipRatio >= 0 && unclipRatio <= 10)) {
    throw new PluginInputError(`"unclipRatio" must be a number from 0 to 10, got ${unclipRatio}`);
  }
  const size = detInputSize(image.width, image.height, maxSide);
  const resized = resizeBilinear(image, size.width, size.height);
  const data = new Float32Array(3 * size.width * size.height);
  writeNchw(data, 0, resized, size.width, MEAN, STD);
  const outputs = await infer({ x: float32([1, 3, size.height, size.width], data) });
  const map = floatOutput(outputs, "sigmoid_0.tmp_0", "ocr-det");
  const [mapHeight, mapWidth] = map.dims.slice(-2);
  const boxes = dbBoxes(map.data, mapWidth, mapHeight, image.width, image.height, {
    unclipRatio,
  });
  return { boxes, width: image.width, height: image.height };
}

/** The `ocr-det` plugin. */
const plugin: PipelinePlugin<OcrDetInput, OcrDetOutput> = {
  models: ["ocr-det"],
  process: detect,
  probe: probeTextImage,
};
export default plugin;
