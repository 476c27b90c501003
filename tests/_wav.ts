/** Test helper: reads a 16-bit PCM mono WAV file (the VAD fixture) into samples in [-1, 1]. */

/** The samples of the file's `data` chunk. */
export function readWav(path: string | URL): Float32Array {
  const bytes = Deno.readFileSync(path);
  const view = new DataView(bytes.buffer);
  let offset = 12;
  while (offset < bytes.length) {
    const id = new TextDecoder().decode(bytes.subarray(offset, offset + 4));
    const size = view.getUint32(offset + 4, true);
    if (id === "data") {
      return Float32Array.from(
        { length: size / 2 },
        (_, i) => view.getInt16(offset + 8 + i * 2, true) / 32768,
      );
    }
    offset += 8 + size;
  }
  throw new Error(`${path}: no data chunk`);
}
