/**
 * Another process on the GPU, for the report's pressure step: allocates `--bytes` with
 * `cudaMalloc` (through ffi/cudart.ts: libcudart on a card, the driver double in the
 * rehearsal), prints `{"ready":true,...}` on stdout, holds the memory until its stdin
 * closes, then frees it and exits.
 *
 *     deno run -A scripts/gpu_report/tenant.ts --bytes 107374182400
 * @module
 */
import { parseArgs } from "node:util";
import { openCudart } from "../../ffi/cudart.ts";

const { values } = parseArgs({ args: Deno.args, options: { bytes: { type: "string" } } });
const bytes = Number(values.bytes);
if (!Number.isSafeInteger(bytes) || bytes <= 0) {
  console.error(`--bytes: ${JSON.stringify(values.bytes)} is not a positive whole number`);
  Deno.exit(2);
}
const cuda = openCudart();
cuda.setDevice(0);
// One allocation of up to 4 GiB at a time: some drivers refuse single huge blocks.
const CHUNK = 4 * 2 ** 30;
const held: Deno.PointerValue[] = [];
let allocated = 0;
try {
  while (allocated < bytes) {
    const size = Math.min(CHUNK, bytes - allocated);
    held.push(cuda.malloc(size));
    allocated += size;
  }
  console.log(JSON.stringify({ ready: true, pid: Deno.pid, bytes: allocated }));
} catch (error) {
  console.log(JSON.stringify({ ready: false, bytes: allocated, error: String(error) }));
}
// Hold until the parent closes stdin.
for await (const _ of Deno.stdin.readable) { /* nothing is sent */ }
for (const ptr of held) cuda.free(ptr);
cuda.close();
