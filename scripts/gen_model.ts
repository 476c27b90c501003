/**
 * Writes a synthetic ONNX model of a given weight size (see core/models/synthetic.ts).
 *
 *     deno run --allow-read --allow-write scripts/gen_model.ts --size 256MiB --out data/models/synthetic-256MiB.onnx
 * @module
 */
import { parseArgs } from "node:util";
import {
  formatSyntheticSize,
  parseSyntheticSize,
  writeSyntheticModel,
} from "../core/models/synthetic.ts";

const HELP = `Usage: gen_model.ts --size SIZE [--out PATH] [--seed N] [--width W]

Writes an ONNX model (MatMul + Add + Relu layers, float32 weights) whose weights take SIZE.

  --size SIZE   weight bytes: 4096, 64KiB, 256MiB, 1.5GB, 2GiB (B, KB, KiB, MB, MiB, GB, GiB)
  --out PATH    output file (default: synthetic-SIZE.onnx in the current directory)
  --seed N      PRNG seed; the same seed and size give the same file (default 1)
  --width W     layer width (default: chosen from the size)
  -h, --help    show this help`;

/** Parses the command line, writes the model with a progress line, and exits non-zero on error. */
async function main(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        size: { type: "string" },
        out: { type: "string" },
        seed: { type: "string", default: "1" },
        width: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (!values.size) {
    console.error(`Missing --size\n\n${HELP}`);
    return 2;
  }
  const seed = Number(values.seed);
  const width = values.width === undefined ? undefined : Number(values.width);
  if (!Number.isInteger(seed) || (width !== undefined && !(Number.isInteger(width) && width > 0))) {
    console.error(
      `Invalid --seed "${values.seed}" or --width "${values.width}": expected integers`,
    );
    return 2;
  }
  let bytes: number;
  try {
    bytes = parseSyntheticSize(values.size);
  } catch (error) {
    console.error((error as Error).message);
    return 2;
  }
  const out = values.out ?? `synthetic-${formatSyntheticSize(bytes)}.onnx`;
  const encoder = new TextEncoder();
  const start = performance.now();
  let lastPrint = 0;
  const info = await writeSyntheticModel(out, bytes, {
    seed,
    width,
    onProgress: (written, total) => {
      const now = performance.now();
      if (now - lastPrint < 100 && written < total) return;
      lastPrint = now;
      const pct = ((100 * written) / total).toFixed(1).padStart(5);
      const mib = (written / 2 ** 20).toFixed(1);
      Deno.stderr.writeSync(encoder.encode(`\r${pct} %  ${mib} MiB  ${out}`));
    },
  });
  Deno.stderr.writeSync(encoder.encode("\n"));
  const seconds = ((performance.now() - start) / 1000).toFixed(1);
  console.log(
    `Wrote ${info.path}: ${info.fileBytes} bytes (${info.layers} layers of width ${info.width}, ` +
      `${info.weightBytes} weight bytes) in ${seconds} s`,
  );
  if (info.fileBytes > 2 ** 31 - 1) {
    console.warn(
      "Note: onnxruntime cannot load a protobuf model over 2 GiB; this file is for disk tests.",
    );
  }
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
