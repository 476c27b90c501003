/**
 * Builds the driver test double (tests/fake_gpu.c) into tests/.build/libfakegpu.so and
 * tests/.build/libfakegpu_nov2.so (an old driver: without nvmlDeviceGetMemoryInfo_v2 and
 * the _v3 process lists) and tests/.build/libfakegpu_procs_v1.so (process lists only as
 * the unversioned v1 symbols). Skips a library
 * that is newer than the source. Run it with `deno task build:fake-gpu`.
 *
 * @module
 */

import { defineTool } from "./_lib/tool.ts";

defineTool({
  name: "build:fake-gpu",
  usage: "deno task build:fake-gpu",
  about: "Compiles the driver test double tests/fake_gpu.c (with $CC, default cc) into\n" +
    "tests/.build/libfakegpu.so and tests/.build/libfakegpu_nov2.so (an old driver without\n" +
    "the v2/v3 symbols); a library newer than the source is kept.",
  flags: {},
  notes: "Exit status: 0 built or up to date; 1 no compiler or the compile failed; 2 a bad flag.",
}).parse(Deno.args);

const root = new URL("../", import.meta.url);
const source = new URL("tests/fake_gpu.c", root).pathname;
const outDir = new URL("tests/.build/", root).pathname;

/** One library to build: its file name and the extra compiler flags. */
interface Target {
  file: string;
  flags: string[];
}

const targets: Target[] = [
  { file: "libfakegpu.so", flags: [] },
  // An old driver: no nvmlDeviceGetMemoryInfo_v2, no nvmlDeviceGetComputeRunningProcesses_v3.
  { file: "libfakegpu_nov2.so", flags: ["-DFAKE_NO_MEMINFO_V2", "-DFAKE_NO_PROCESSES_V3"] },
  // A driver whose process lists are only the oldest, unversioned symbols (16-byte structs).
  { file: "libfakegpu_procs_v1.so", flags: ["-DFAKE_NO_PROCESSES_V3", "-DFAKE_PROCESSES_V1"] },
];

function mtime(path: string): number | null {
  try {
    return Deno.statSync(path).mtime?.getTime() ?? null;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw err;
  }
}

async function compile(cc: string, out: string, flags: string[]): Promise<void> {
  const args = [
    "-shared",
    "-fPIC",
    "-O2",
    "-Wall",
    "-Wextra",
    "-fvisibility=hidden",
    ...flags,
    "-o",
    out,
    source,
  ];
  let result: Deno.CommandOutput;
  try {
    result = await new Deno.Command(cc, { args, stdout: "inherit", stderr: "inherit" }).output();
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      console.error(
        `No C compiler found: "${cc}" is not on PATH. Install one (apt-get install gcc) ` +
          `or set CC to its path, then run \`deno task build:fake-gpu\` again.`,
      );
      Deno.exit(1);
    }
    throw err;
  }
  if (!result.success) {
    console.error(`Compiling ${source} failed: ${cc} ${args.join(" ")}`);
    Deno.exit(result.code || 1);
  }
}

const cc = Deno.env.get("CC") || "cc";
const sourceTime = mtime(source);
if (sourceTime === null) {
  console.error(`Missing source: ${source}`);
  Deno.exit(1);
}
Deno.mkdirSync(outDir, { recursive: true });
for (const target of targets) {
  const out = outDir + target.file;
  const built = mtime(out);
  if (built !== null && built > sourceTime) {
    console.log(`${out} is up to date`);
    continue;
  }
  await compile(cc, out, target.flags);
  console.log(`built ${out}`);
}
