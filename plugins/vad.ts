/**
 * Silero VAD v5 (the `silero-vad` pipeline): 16 kHz mono samples in, one speech
 * probability per 512-sample frame (32 ms) out, plus speech segments. Like the official
 * silero-vad wrapper (≥ 5.1), each frame is fed with the previous frame's last 64
 * samples in front (576 in all) and the recurrent state `[2, 1, 128]` is carried from
 * frame to frame. For a stream (a WebSocket), pass `stream: true` and hand each call's
 * `state` to the next; a last call with `stream: false` flushes.
 * @module
 */
import type { InferFn, PipelinePlugin } from "../workers/plugin.ts";
import { PluginInputError } from "../workers/plugin.ts";
import { float32, floatOutput } from "./_tensor.ts";

/** The only sample rate accepted. */
export const VAD_SAMPLE_RATE = 16000;
/** Samples per frame (32 ms at 16 kHz). */
export const VAD_FRAME_SAMPLES = 512;
/** Samples of the previous frame fed in front of each frame. */
const CONTEXT = 64;
/** Longest input one call takes: 10 minutes. */
export const VAD_MAX_SAMPLES = VAD_SAMPLE_RATE * 600;

/** Everything a stream carries from one call to the next; structured-cloneable. */
export interface VadState {
  /** The model's recurrent state, `[2, 1, 128]`. */
  rnn: Float32Array;
  /** The last 64 samples fed to the model. */
  context: Float32Array;
  /** Samples that did not fill a frame yet (fewer than 512). */
  pending: Float32Array;
  /** Frames processed since the stream began. */
  frames: number;
  /** Frame where the speech now going on began, or null in silence. */
  speechStartFrame: number | null;
  /** Frame where a pause inside that speech began, or null. */
  silenceStartFrame: number | null;
}

/** What `silero-vad` takes. */
export interface VadInput {
  /** Mono samples in [-1, 1] (a plain number array is accepted too, for JSON callers). */
  samples: Float32Array | number[];
  /** Must be 16000 (the default). */
  sampleRate?: number;
  /** Speech when the probability reaches this (default 0.5); it ends below this − 0.15. */
  threshold?: number;
  /**
   * The previous call's `state`, to go on with a stream: as returned, or as the HTTP API
   * answered it (its arrays as JSON arrays).
   */
  state?: VadState;
  /**
   * true: more audio follows, so a partial frame waits in `state` and a segment still
   * going on stays open. false (default): the tail is zero-padded to a frame and an open
   * segment is closed.
   */
  stream?: boolean;
}

/** A stretch of speech, in seconds from the start of the stream. */
export interface SpeechSegment {
  startSec: number;
  endSec: number;
}

/** What `silero-vad` returns. */
export interface VadOutput {
  /** Speech probability of each frame this call processed, each in [0, 1]. */
  probabilities: number[];
  frameSamples: 512;
  /** Index in the stream of this call's first frame (0 for a single call). */
  firstFrame: number;
  /** Segments that ended in this call (at least 250 ms, padded by 30 ms each side). */
  speechSegments: SpeechSegment[];
  /** Start of a segment still going on at the end of a stream call, else null. */
  openSpeechStartSec: number | null;
  /** Pass it back with the next chunk of the same stream. */
  state: VadState;
}

const MIN_SILENCE_SEC = 0.1, MIN_SPEECH_SEC = 0.25, PAD_SEC = 0.03;
const FRAME_SEC = VAD_FRAME_SAMPLES / VAD_SAMPLE_RATE;

/** A fresh stream state. */
export function newVadState(): VadState {
  return {
    rnn: new Float32Array(2 * 128),
    context: new Float32Array(CONTEXT),
    pending: new Float32Array(0),
    frames: 0,
    speechStartFrame: null,
    silenceStartFrame: null,
  };
}

/** Checks a request and returns its fields with defaults; throws PluginInputError on bad input. */
function parseInput(input: VadInput): Required<Omit<VadInput, "sampleRate">> {
  if (typeof input !== "object" || input === null) {
    throw new PluginInputError(`Expected {samples: Float32Array, sampleRate: 16000}`);
  }
  const { sampleRate = VAD_SAMPLE_RATE, threshold = 0.5, stream = false } = input;
  // JSON callers (the HTTP API) send a plain array of numbers.
  const samples = Array.isArray(input.samples) && input.samples.every((v) => typeof v === "number")
    ? Float32Array.from(input.samples as number[])
    : input.samples;
  if (!(samples instanceof Float32Array)) {
    throw new PluginInputError(
      `"samples" must be a Float32Array of 16 kHz mono audio, got ${
        samples === undefined ? "nothing" : (samples as object).constructor?.name ?? typeof samples
      }`,
    );
  }
  if (sampleRate !== VAD_SAMPLE_RATE) {
    throw new PluginInputError(
      `Silero VAD takes 16 kHz audio: got "sampleRate" ${sampleRate}; resample to 16000 first`,
    );
  }
  if (samples.length > VAD_MAX_SAMPLES) {
    throw new PluginInputError(
      `"samples" has ${samples.length} samples (${
        (samples.length / VAD_SAMPLE_RATE).toFixed(1)
      } s); send at most ${VAD_MAX_SAMPLES} (10 minutes) per call`,
    );
  }
  if (!samples.every(Number.isFinite)) {
    throw new PluginInputError(`"samples" contains NaN or infinite values`);
  }
  if (typeof threshold !== "number" || !(threshold > 0 && threshold < 1)) {
    throw new PluginInputError(`"threshold" must be a number between 0 and 1, got ${threshold}`);
  }
  const state = readState(input.state);
  if (!state) {
    throw new PluginInputError(
      `"state" is not a state this plugin returned; leave it out to start`,
    );
  }
  return { samples, threshold, stream: stream === true, state };
}

/**
 * The stream state a caller handed back, or a fresh one when none; null when it is not
 * one this plugin returned. Accepts it as returned in-process (typed arrays) and as the
 * HTTP API answered it (the same fields, the arrays as JSON arrays of numbers).
 */
function readState(given: unknown): VadState | null {
  if (given === undefined || given === null) return newVadState();
  if (typeof given !== "object") return null;
  const raw = given as Record<string, unknown>;
  const floats = (value: unknown, ok: (length: number) => boolean) => {
    const array = value instanceof Float32Array
      ? value
      : Array.isArray(value) && value.every((v) => typeof v === "number" && Number.isFinite(v))
      ? Float32Array.from(value)
      : null;
    return array && ok(array.length) ? array : null;
  };
  const frame = (value: unknown) =>
    value === null || (Number.isInteger(value) && (value as number) >= 0);
  const rnn = floats(raw.rnn, (n) => n === 256);
  const context = floats(raw.context, (n) => n === CONTEXT);
  const pending = floats(raw.pending, (n) => n < VAD_FRAME_SAMPLES);
  const frames = raw.frames;
  if (
    !rnn || !context || !pending || !Number.isInteger(frames) || (frames as number) < 0 ||
    !frame(raw.speechStartFrame ?? null) || !frame(raw.silenceStartFrame ?? null)
  ) return null;
  return {
    rnn,
    context,
    pending,
    frames: frames as number,
    speechStartFrame: (raw.speechStartFrame ?? null) as number | null,
    silenceStartFrame: (raw.silenceStartFrame ?? null) as number | null,
  };
}

/** Runs VAD over one call's samples, going on from `state` when given. */
export async function detectSpeech(input: VadInput, infer: InferFn): Promise<VadOutput> {
  const { samples, threshold, stream, state: previous } = parseInput(input);
  let audio = new Float32Array(previous.pending.length + samples.length);
  audio.set(previous.pending);
  audio.set(samples, previous.pending.length);
  const full = Math.floor(audio.length / VAD_FRAME_SAMPLES);
  const frames = stream ? full : Math.ceil(audio.length / VAD_FRAME_SAMPLES);
  if (frames * VAD_FRAME_SAMPLES > audio.length) {
    const padded = new Float32Array(frames * VAD_FRAME_SAMPLES);
    padded.set(audio);
    audio = padded;
  }
  const sr = { type: "int64" as const, dims: [], data: BigInt64Array.of(BigInt(VAD_SAMPLE_RATE)) };
  let rnn = previous.rnn, context = previous.context;
  let speechStart = previous.speechStartFrame, silenceStart = previous.silenceStartFrame;
  const negThreshold = threshold - 0.15;
  const probabilities: number[] = [];
  const speechSegments: SpeechSegment[] = [];
  const close = (start: number, end: number, last: number) => {
    if ((end - start) * FRAME_SEC < MIN_SPEECH_SEC) return;
    speechSegments.push({
      startSec: round3(Math.max(0, start * FRAME_SEC - PAD_SEC)),
      endSec: round3(Math.min(last * FRAME_SEC, end * FRAME_SEC + PAD_SEC)),
    });
  };
  for (let f = 0; f < frames; f++) {
    const x = new Float32Array(CONTEXT + VAD_FRAME_SAMPLES);
    x.set(context);
    x.set(audio.subarray(f * VAD_FRAME_SAMPLES, (f + 1) * VAD_FRAME_SAMPLES), CONTEXT);
    const outputs = await infer({
      input: float32([1, x.length], x),
      state: float32([2, 1, 128], rnn),
      sr,
    });
    const p = Math.min(1, Math.max(0, floatOutput(outputs, "output", "silero-vad").data[0]));
    rnn = floatOutput(outputs, "stateN", "silero-vad").data.slice();
    context = x.slice(x.length - CONTEXT);
    probabilities.push(p);
    const frame = previous.frames + f;
    if (p >= threshold) {
      silenceStart = null;
      speechStart ??= frame;
    } else if (speechStart !== null && p < negThreshold) {
      silenceStart ??= frame;
      if ((frame + 1 - silenceStart) * FRAME_SEC >= MIN_SILENCE_SEC) {
        close(speechStart, silenceStart, frame + 1);
        speechStart = silenceStart = null;
      }
    }
  }
  const total = previous.frames + frames;
  if (!stream && speechStart !== null) {
    close(speechStart, silenceStart ?? total, total);
    speechStart = silenceStart = null;
  }
  return {
    probabilities,
    frameSamples: VAD_FRAME_SAMPLES,
    firstFrame: previous.frames,
    speechSegments,
    openSpeechStartSec: speechStart === null
      ? null
      : round3(Math.max(0, speechStart * FRAME_SEC - PAD_SEC)),
    state: {
      rnn,
      context,
      pending: audio.slice(frames * VAD_FRAME_SAMPLES),
      frames: total,
      speechStartFrame: speechStart,
      silenceStartFrame: silenceStart,
    },
  };
}

function round3(v: number): number {
  return Math.round(v * 1000) / 1000;
}

/** The `silero-vad` plugin. */
const plugin: PipelinePlugin<VadInput, VadOutput> = {
  models: ["silero-vad"],
  process: detectSpeech,
  probe() {
    // 0.25 s of a 220 Hz buzz with harmonics under a 4 Hz envelope: a deterministic, voiced-like signal.
    const samples = new Float32Array(VAD_SAMPLE_RATE / 4);
    for (let i = 0; i < samples.length; i++) {
      const t = i / VAD_SAMPLE_RATE;
      let v = 0;
      for (let h = 1; h <= 8; h++) v += Math.sin(2 * Math.PI * 220 * h * t) / h;
      samples[i] = 0.2 * v * (0.6 + 0.4 * Math.sin(2 * Math.PI * 4 * t));
    }
    return { samples, sampleRate: VAD_SAMPLE_RATE };
  },
};
export default plugin;
