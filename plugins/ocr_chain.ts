/**
 * The OCR chain on the main thread: image → `ocr-det` boxes → `ocr-cls` angles →
 * `ocr-rec` lines. It knows nothing of workers: the caller passes one function per
 * pipeline that runs a plugin payload there (for example through the PipelineManager).
 * @module
 */
import type { ImageInput } from "./_image.ts";
import type { OcrClsInput, OcrClsOutput } from "./ocr_cls.ts";
import type { OcrDetInput, OcrDetOutput } from "./ocr_det.ts";
import type { OcrLine, OcrRecInput, OcrRecOutput } from "./ocr_rec.ts";

/** Runs one plugin payload on each of the three pipelines. */
export interface OcrRunners {
  det(payload: OcrDetInput): Promise<OcrDetOutput>;
  /** Left out: every box is read as upright. */
  cls?(payload: OcrClsInput): Promise<OcrClsOutput>;
  rec(payload: OcrRecInput): Promise<OcrRecOutput>;
}

/** Chain settings. */
export interface OcrChainOptions {
  /** Run the angle classifier (default true, when a `cls` runner is given). */
  useAngleCls?: boolean;
  /** Lines recognized with a lower score are dropped (PaddleOCR's `drop_score`, default 0.5). */
  dropScore?: number;
  /** Longest side `ocr-det` resizes to (default 960). */
  maxSide?: number;
  /** `ocr-det`'s unclip ratio (default 2.5). */
  unclipRatio?: number;
}

/** What the chain returns. */
export interface OcrChainResult {
  /** Lines in reading order. */
  lines: OcrLine[];
  /** The lines' text joined with newlines. */
  text: string;
  /** Size of the decoded image. */
  width: number;
  height: number;
  /** Wall time of each stage as seen from the caller, in ms. */
  timings: { detMs: number; clsMs: number; recMs: number; totalMs: number };
}

/** A fresh copy of the image for each stage, so a runner may transfer its buffers. */
function copyImage(image: ImageInput): ImageInput {
  if ("image" in image) return { image: image.image.slice() };
  return { rgb: image.rgb.slice(), width: image.width, height: image.height };
}

/** Runs det → cls → rec on one image. */
export async function runOcrChain(
  image: ImageInput,
  runners: OcrRunners,
  options: OcrChainOptions = {},
): Promise<OcrChainResult> {
  const started = performance.now();
  const det = await runners.det({
    ...copyImage(image),
    ...(options.maxSide !== undefined ? { maxSide: options.maxSide } : {}),
    ...(options.unclipRatio !== undefined ? { unclipRatio: options.unclipRatio } : {}),
  });
  const detDone = performance.now();
  let angles: OcrClsOutput["angles"] | undefined;
  const boxes = det.boxes.map(({ x, y, width, height }) => ({ x, y, width, height }));
  if (boxes.length > 0 && runners.cls && options.useAngleCls !== false) {
    angles = (await runners.cls({ ...copyImage(image), boxes })).angles;
  }
  const clsDone = performance.now();
  const rec = boxes.length > 0
    ? await runners.rec({ ...copyImage(image), boxes, angles })
    : { lines: [] };
  const done = performance.now();
  const dropScore = options.dropScore ?? 0.5;
  const lines = rec.lines.filter((line) => line.text.length > 0 && line.score >= dropScore);
  return {
    lines,
    text: lines.map((line) => line.text).join("\n"),
    width: det.width,
    height: det.height,
    timings: {
      detMs: detDone - started,
      clsMs: clsDone - detDone,
      recMs: done - clsDone,
      totalMs: done - started,
    },
  };
}
