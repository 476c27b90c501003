/**
 * Writes a synthetic ONNX model of a given weight size (see core/models/synthetic.ts): the
 * graph in OUT and its weights in OUT.data beside it, as ONNX's tools write big models.
 * Refuses sizes above the 20 GiB limit before writing anything; Ctrl-C, SIGTERM or an error
 * mid-write remove the temporary files.
 *
 *     deno task gen-model --size 4GiB --out data/models/synthetic-4GiB.onnx
 * @module
 */
import {
  DiskSpaceError,
  formatSyntheticSize,
  formatWriteProgress,
  MAX_SYNTHETIC_BYTES,
  parseSyntheticSize,
  writeSyntheticModel,
} from "../core/models/synthetic.ts";
import { UsageError } from "./_lib/cli.ts";
import { defineTool, flag } from "./_lib/tool.ts";

/** Exit status after SIGINT / SIGTERM, as a shell reports it (128 + the signal's number). */
const SIGNAL_EXIT = { SIGINT: 130, SIGTERM: 143 } as const;

const tool = defineTool({
  name: "gen-model",
  usage: "deno task gen-model --size SIZE [--out PATH] [--seed N] [--width W] [--single-file]",
  about: "Writes an ONNX model (MatMul + Add + Relu layers, float32 weights) whose weights take\n" +
    "SIZE: the graph in PATH and the weights in PATH.data (external data), so sizes up to\n" +
    `${formatSyntheticSize(MAX_SYNTHETIC_BYTES)} work. Free disk space is checked first.`,
  flags: {
    size: {
      arg: "SIZE",
      help: "weight bytes: 4096, 64KiB, 256MiB, 1.5GB, 20GiB (B, KB, KiB, MB, MiB, GB, GiB)",
      schema: flag.custom((text) => {
        if (text === undefined) throw new UsageError("", "required: the weight size, e.g. 256MiB");
        let bytes: number;
        try {
          bytes = parseSyntheticSize(text);
        } catch (error) {
          throw new UsageError("", (error as Error).message);
        }
        if (bytes > MAX_SYNTHETIC_BYTES) {
          throw new UsageError(
            "",
            `${JSON.stringify(text)} is above the ${
              formatSyntheticSize(MAX_SYNTHETIC_BYTES)
            } limit: ask for ${formatSyntheticSize(MAX_SYNTHETIC_BYTES)} or less`,
          );
        }
        return bytes;
      }),
    },
    out: {
      arg: "PATH",
      help: "output file (default: synthetic-SIZE.onnx in the current directory)",
      schema: flag.text(),
    },
    seed: {
      arg: "N",
      help: "PRNG seed; the same seed and size give the same files (default 1)",
      schema: flag.number(1, { integer: true }),
    },
    width: {
      arg: "W",
      help: "layer width (default: chosen from the size)",
      schema: flag.number(0, { min: 1, integer: true }),
    },
    "single-file": {
      help: "one protobuf with the weights inside (onnxruntime reads those only below 2 GiB)",
    },
  },
  notes: "Exit status: 0 written; 1 not enough disk space or a write error; 2 a bad flag;\n" +
    "130 / 143 stopped by SIGINT / SIGTERM (the temporary files are removed).",
});

/** Writes the model with a progress line; the exit status. */
async function main(args: string[]): Promise<number> {
  const { values } = tool.parse(args);
  const bytes = values.size;
  const out = values.out ?? `synthetic-${formatSyntheticSize(bytes)}.onnx`;
  const encoder = new TextEncoder();
  const start = performance.now();
  let lastPrint = 0;
  const stop = new AbortController();
  let stoppedBy: keyof typeof SIGNAL_EXIT | null = null;
  const listeners = (Object.keys(SIGNAL_EXIT) as Array<keyof typeof SIGNAL_EXIT>).map((name) => {
    const listener = () => {
      stoppedBy = name;
      stop.abort(new Error(`stopped by ${name}`));
    };
    Deno.addSignalListener(name, listener);
    return () => Deno.removeSignalListener(name, listener);
  });
  let info;
  try {
    info = await writeSyntheticModel(out, bytes, {
      seed: values.seed,
      width: values.width === 0 ? undefined : values.width,
      externalData: !values["single-file"],
      signal: stop.signal,
      onProgress: (written, total) => {
        const now = performance.now();
        if (now - lastPrint < 100 && written < total) return;
        lastPrint = now;
        const done = Math.round((30 * written) / total);
        const line = `\r[${"#".repeat(done)}${".".repeat(30 - done)}] ${
          formatWriteProgress(written, total, (now - start) / 1000)
        }  ${out}`;
        Deno.stderr.writeSync(encoder.encode(line));
      },
    });
  } catch (error) {
    Deno.stderr.writeSync(encoder.encode("\n"));
    if (stoppedBy) {
      console.error(`gen-model: ${stoppedBy}: stopped; the partial files were removed`);
      return SIGNAL_EXIT[stoppedBy];
    }
    console.error(
      error instanceof DiskSpaceError
        ? error.message
        : `gen-model: writing ${out} failed (the partial files were removed): ${
          (error as Error).message
        }`,
    );
    return 1;
  } finally {
    for (const remove of listeners) remove();
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
