/**
 * Renders the VAD test fixture: a short English sentence spoken by `espeak-ng`,
 * resampled to 16 kHz mono, between stretches of near-silence, saved as
 * tests/fixtures/vad_speech.wav (16-bit PCM).
 *
 * Run: `deno run --allow-all scripts/make_vad_fixture.ts` (needs Debian's `espeak-ng`).
 * @module
 */

/** Where the fixture is written. */
export const VAD_FIXTURE_PATH = new URL("../tests/fixtures/vad_speech.wav", import.meta.url);
/** Seconds of near-silence before and after the speech. */
export const VAD_FIXTURE_SILENCE_SEC = 0.75;
const RATE = 16000;

/** Reads 16-bit PCM mono WAV bytes as samples in [-1, 1) and their sample rate. */
export function readWav(bytes: Uint8Array): { samples: Float32Array; sampleRate: number } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const tag = (at: number) => String.fromCharCode(...bytes.subarray(at, at + 4));
  if (tag(0) !== "RIFF" || tag(8) !== "WAVE") throw new Error("Not a RIFF/WAVE file");
  let offset = 12, sampleRate = 0;
  while (offset + 8 <= bytes.length) {
    const id = tag(offset), size = view.getUint32(offset + 4, true);
    if (id === "fmt ") {
      const format = view.getUint16(offset + 8, true), channels = view.getUint16(offset + 10, true);
      const bits = view.getUint16(offset + 22, true);
      if (format !== 1 || channels !== 1 || bits !== 16) {
        throw new Error(
          `Expected 16-bit PCM mono, got format ${format}, ${channels} ch, ${bits} bit`,
        );
      }
      sampleRate = view.getUint32(offset + 12, true);
    } else if (id === "data") {
      // Streamed WAVs (espeak-ng --stdout) carry a placeholder size: read to the end.
      const end = Math.min(bytes.length, offset + 8 + size);
      const count = Math.floor((end - offset - 8) / 2);
      const samples = new Float32Array(count);
      for (let i = 0; i < count; i++) samples[i] = view.getInt16(offset + 8 + i * 2, true) / 32768;
      return { samples, sampleRate };
    }
    offset += 8 + size + (size % 2);
  }
  throw new Error("WAV has no data chunk");
}

/** Encodes samples in [-1, 1] as 16-bit PCM mono WAV bytes. */
export function writeWav(samples: Float32Array, sampleRate: number): Uint8Array {
  const bytes = new Uint8Array(44 + samples.length * 2);
  const view = new DataView(bytes.buffer);
  const tag = (at: number, s: string) => [...s].forEach((c, i) => bytes[at + i] = c.charCodeAt(0));
  tag(0, "RIFF");
  view.setUint32(4, 36 + samples.length * 2, true);
  tag(8, "WAVE");
  tag(12, "fmt ");
  view.setUint32(16, 16, true);
  view.setUint16(20, 1, true);
  view.setUint16(22, 1, true);
  view.setUint32(24, sampleRate, true);
  view.setUint32(28, sampleRate * 2, true);
  view.setUint16(32, 2, true);
  view.setUint16(34, 16, true);
  tag(36, "data");
  view.setUint32(40, samples.length * 2, true);
  samples.forEach((s, i) => {
    view.setInt16(44 + i * 2, Math.max(-32768, Math.min(32767, Math.round(s * 32767))), true);
  });
  return bytes;
}

/** Resamples with a Hann-windowed sinc low-pass (cut-off just under the lower Nyquist). */
function resample(input: Float32Array, from: number, to: number): Float32Array {
  const out = new Float32Array(Math.floor((input.length * to) / from));
  const cutoff = (0.95 * Math.min(from, to)) / 2 / from; // cycles per input sample
  const half = 32;
  for (let i = 0; i < out.length; i++) {
    const center = (i * from) / to;
    let sum = 0;
    for (let k = Math.ceil(center - half); k <= Math.floor(center + half); k++) {
      if (k < 0 || k >= input.length) continue;
      const t = k - center;
      const sinc = t === 0 ? 2 * cutoff : Math.sin(2 * Math.PI * cutoff * t) / (Math.PI * t);
      sum += input[k] * sinc * (0.5 + 0.5 * Math.cos((Math.PI * t) / half));
    }
    out[i] = sum;
  }
  return out;
}

if (import.meta.main) {
  const spoken = await new Deno.Command("espeak-ng", {
    args: ["--stdout", "-s", "150", "Headroom keeps the memory free"],
    stdout: "piped",
  }).output();
  if (!spoken.success) {
    throw new Error("espeak-ng failed; install it with apt-get install espeak-ng");
  }
  const { samples, sampleRate } = readWav(spoken.stdout);
  const speech = resample(samples, sampleRate, RATE);
  // Trim espeak's own leading and trailing silence, then add ours with faint noise.
  let first = 0, last = speech.length - 1;
  while (first < last && Math.abs(speech[first]) < 0.01) first++;
  while (last > first && Math.abs(speech[last]) < 0.01) last--;
  const pad = Math.round(VAD_FIXTURE_SILENCE_SEC * RATE);
  const out = new Float32Array(pad * 2 + last - first + 1);
  let seed = 1;
  for (let i = 0; i < out.length; i++) {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    out[i] = (seed / 2147483648 - 0.5) * 0.002;
  }
  for (let i = first; i <= last; i++) out[pad + i - first] += speech[i];
  const wav = writeWav(out, RATE);
  await Deno.writeFile(VAD_FIXTURE_PATH, wav);
  console.log(
    `wrote ${VAD_FIXTURE_PATH.pathname} (${wav.byteLength} bytes, ${
      (out.length / RATE).toFixed(2)
    } s, speech ${VAD_FIXTURE_SILENCE_SEC}–${((pad + last - first) / RATE).toFixed(2)} s)`,
  );
}
