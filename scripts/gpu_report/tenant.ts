/**
 * Another process on the GPU, for the report's pressure step: allocates `--bytes` with
 * `cudaMalloc` (through ffi/cudart.ts: libcudart on a card, the driver double in the
 * rehearsal), prints `{"ready":true,...}` on stdout with `cudaMemGetInfo` as it was
 * before, holds the memory until its stdin closes, then frees it and exits. `--bytes 0`
 * prints `cudaMemGetInfo` and exits: the report reads the CUDA runtime's figures through
 * it, so that its own process never holds a CUDA context (which would put it in the
 * driver's compute list and cost it memory).
 *
 *     deno run -A scripts/gpu_report/tenant.ts --bytes 107374182400
 * @module
 */
import { parseArgs } from "node:util";
import { openCudart } from "../../ffi/cudart.ts";

const { values } = parseArgs({ args: Deno.args, options: { bytes: { type: "string" } } });
const bytes = Number(values.bytes);
if (!Number.isSafeInteger(bytes) || bytes < 0) {
  console.error(`--bytes: ${JSON.stringify(values.bytes)} is not a whole number of bytes`);
  Deno.exit(2);
}
const cuda = openCudart();
cuda.setDevice(0);
const before = { ...cuda.memGetInfo(), library: cuda.path };
if (bytes === 0) {
  console.log(JSON.stringify({ ready: true, bytes: 0, before }));
  cuda.close();
  Deno.exit(0);
}
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
  console.log(JSON.stringify({ ready: true, pid: Deno.pid, bytes: allocated, before }));
} catch (error) {
  console.log(JSON.stringify({ ready: false, bytes: allocated, before, error: String(error) }));
}
// Hold until the parent closes stdin.
for await (const _ of Deno.stdin.readable) { /* nothing is sent */ }
for (const ptr of held) cuda.free(ptr);
cuda.close();
