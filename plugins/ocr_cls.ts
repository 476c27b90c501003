/**
 * PaddleOCR text-angle classification (the `ocr-cls` pipeline): for each text box of an
 * image, whether the text reads upright (0) or upside down (180). Crops are resized to
 * 48 px high (at most 192 wide, right-padded), normalized to [-1, 1] and run in batches.
 * @module
 */
import type { InferFn, PipelinePlugin } from "../workers/plugin.ts";
import {
  type Box,
  boxQuad,
  imageFromInput,
  type ImageInput,
  isVertical,
  parseBoxes,
  probeTextImage,
  type RgbImage,
  sampleQuad,
  writeNchw,
} from "./_image.ts";
import { float32, floatOutput } from "./_tensor.ts";

/** What `ocr-cls` takes: the image and the boxes `ocr-det` found in it. */
export type OcrClsInput = ImageInput & { boxes: Box[] };

/** The classifier's verdict on one box. */
export interface ClsAngle {
  label: 0 | 180;
  /** Probability of `label`. */
  score: number;
}

/** What `ocr-cls` returns: one angle per input box, in the same order. */
export interface OcrClsOutput {
  angles: ClsAngle[];
}

/** Where the text of `probeTextImage()` lies, as `ocr-det` finds it. */
export const PROBE_BOX: Box = { x: 12, y: 14, width: 141, height: 20 };

const HEIGHT = 48, WIDTH = 192, BATCH = 16;
const HALF = [0.5, 0.5, 0.5] as const;

/** Crops a box resized to `height` px high, as wide as its aspect ratio asks up to `maxWidth`. */
export function cropForModel(
  image: RgbImage,
  box: Box,
  height: number,
  maxWidth: number,
  flipped = false,
): RgbImage {
  const vertical = isVertical(box);
  const ratio = vertical ? box.height / box.width : box.width / box.height;
  const width = Math.max(1, Math.min(maxWidth, Math.ceil(height * ratio)));
  return sampleQuad(image, boxQuad(box, vertical, flipped), width, height);
}

/** Classifies the angle of each box's text. */
export async function classify(input: OcrClsInput, infer: InferFn): Promise<OcrClsOutput> {
  const image = imageFromInput(input);
  const boxes = parseBoxes(input.boxes);
  const angles: ClsAngle[] = [];
  for (let start = 0; start < boxes.length; start += BATCH) {
    const batch = boxes.slice(start, start + BATCH);
    const data = new Float32Array(batch.length * 3 * HEIGHT * WIDTH);
    batch.forEach((box, i) => {
      writeNchw(data, i, cropForModel(image, box, HEIGHT, WIDTH), WIDTH, HALF, HALF);
    });
    const outputs = await infer({ x: float32([batch.length, 3, HEIGHT, WIDTH], data) });
    const probs = floatOutput(outputs, "softmax_0.tmp_0", "ocr-cls").data;
    for (let i = 0; i < batch.length; i++) {
      const up = probs[i * 2], down = probs[i * 2 + 1];
      angles.push(down > up ? { label: 180, score: down } : { label: 0, score: up });
    }
  }
  return { angles };
}

/** The `ocr-cls` plugin. */
const plugin: PipelinePlugin<OcrClsInput, OcrClsOutput> = {
  models: ["ocr-cls"],
  process: classify,
  probe: () => ({ ...probeTextImage(), boxes: [PROBE_BOX] }),
};
export default plugin;
