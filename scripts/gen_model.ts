/**
 * Writes a synthetic ONNX model of a given weight size (see core/models/synthetic.ts): the
 * graph in OUT and its weights in OUT.data beside it, as ONNX's tools write big models.
 *
 *     deno task gen-model --size 4GiB --out data/models/synthetic-4GiB.onnx
 * @module
 */
import { parseArgs } from "node:util";
import {
  DiskSpaceError,
  formatSyntheticSize,
  parseSyntheticSize,
  writeSyntheticModel,
} from "../core/models/synthetic.ts";

const HELP =
  `Usage: deno task gen-model --size SIZE [--out PATH] [--seed N] [--width W] [--single-file]

Writes an ONNX model (MatMul + Add + Relu layers, float32 weights) whose weights take SIZE:
the graph in PATH and the weights in PATH.data (external data), so sizes up to 20 GiB work.
Free disk space is checked first.

  --size SIZE     weight bytes: 4096, 64KiB, 256MiB, 1.5GB, 20GiB (B, KB, KiB, MB, MiB, GB, GiB)
  --out PATH      output file (default: synthetic-SIZE.onnx in the current directory)
  --seed N        PRNG seed; the same seed and size give the same files (default 1)
  --width W       layer width (default: chosen from the size)
  --single-file   one protobuf with the weights inside (onnxruntime reads those only below 2 GiB)
  -h, --help      show this help`;

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
        "single-file": { type: "boolean", default: false },
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
  const bar = (written: number, total: number) => {
    const done = Math.round((30 * written) / total);
    const pct = ((100 * written) / total).toFixed(1).padStart(5);
    const gib = (written / 2 ** 30).toFixed(2);
    const seconds = (performance.now() - start) / 1000;
    const rate = seconds > 0 ? (written / 2 ** 20 / seconds).toFixed(0) : "…";
    return `\r[${"#".repeat(done)}${
      ".".repeat(30 - done)
    }] ${pct} %  ${gib} GiB  ${rate} MiB/s  ${out}`;
  };
  let info;
  try {
    info = await writeSyntheticModel(out, bytes, {
      seed,
      width,
      externalData: !values["single-file"],
      onProgress: (written, total) => {
        const now = performance.now();
        if (now - lastPrint < 100 && written < total) return;
        lastPrint = now;
        Deno.stderr.writeSync(encoder.encode(bar(written, total)));
      },
    });
  } catch (error) {
    if (error instanceof DiskSpaceError) {
      console.error(error.message);
      return 1;
    }
    throw error;
  }
  Deno.stderr.writeSync(encoder.encode("\n"));
  const seconds = ((performance.now() - start) / 1000).toFixed(1);
  console.log(
    `Wrote ${info.path}${info.dataPath ? ` + ${info.dataPath}` : ""}: ${info.fileBytes} bytes ` +
      `(${info.layers} layers of width ${info.width}, ${info.weightBytes} weight bytes) in ${seconds} s`,
  );
  if (!info.dataPath && info.fileBytes > 2 ** 31 - 1) {
    console.warn(
      "Note: onnxruntime cannot load a single protobuf of 2 GiB or more; drop --single-file.",
    );
  }
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
