/**
 * Pure helpers of `deno task stress`: the operation mix, a seeded random source, and
 * latency percentiles.
 * @module
 */

/** The operations a stress client sends. */
export const OP_KINDS = ["infer", "load", "offload", "check", "switch"] as const;

/** One kind of operation. */
export type OpKind = typeof OP_KINDS[number];

/** Weight of each operation kind (any non-negative numbers; not necessarily summing to 100). */
export type Mix = Record<OpKind, number>;

/** The default mix: mostly inference, some placement moves, some pre-flight checks. */
export const DEFAULT_MIX = "infer=60,load=10,offload=10,check=15,switch=5";

/**
 * Parses `infer=60,load=10,…` (kinds left out weigh 0). Throws an Error saying what is
 * wrong: an unknown kind, a weight that is not a non-negative number, a kind given
 * twice, or all weights 0.
 */
export function parseMix(text: string): Mix {
  const mix: Mix = { infer: 0, load: 0, offload: 0, check: 0, switch: 0 };
  const seen = new Set<string>();
  for (const part of text.split(",")) {
    const match = /^\s*([a-z]+)\s*=\s*([^,]*?)\s*$/.exec(part);
    if (!match) {
      throw new Error(`${JSON.stringify(part)} is not kind=weight (like ${DEFAULT_MIX})`);
    }
    const [, kind, weightText] = match;
    if (!(OP_KINDS as readonly string[]).includes(kind)) {
      throw new Error(`unknown operation ${JSON.stringify(kind)}: expected ${OP_KINDS.join(", ")}`);
    }
    if (seen.has(kind)) throw new Error(`${kind} is given twice`);
    seen.add(kind);
    const weight = Number(weightText);
    if (weightText === "" || !Number.isFinite(weight) || weight < 0) {
      throw new Error(`${kind}=${weightText}: the weight must be a number ≥ 0`);
    }
    mix[kind as OpKind] = weight;
  }
  if (OP_KINDS.every((kind) => mix[kind] === 0)) {
    throw new Error("every weight is 0: give at least one operation a weight above 0");
  }
  return mix;
}

/** A seeded pseudo-random source in [0, 1) (mulberry32): the same seed, the same sequence. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6D2B79F5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Picks an operation kind with probability proportional to its weight. */
export function pickOp(mix: Mix, random: () => number): OpKind {
  const total = OP_KINDS.reduce((sum, kind) => sum + mix[kind], 0);
  let point = random() * total;
  for (const kind of OP_KINDS) {
    point -= mix[kind];
    if (point < 0 && mix[kind] > 0) return kind;
  }
  return OP_KINDS.findLast((kind) => mix[kind] > 0)!;
}

/** Latency summary in milliseconds (NaN when there are no samples). */
export interface LatencySummary {
  p50: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
}

/** Nearest-rank percentiles of `samples` (milliseconds), rounded to 0.01 ms. */
export function summarize(samples: number[]): LatencySummary {
  if (samples.length === 0) return { p50: NaN, p95: NaN, p99: NaN, max: NaN, mean: NaN };
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = (p: number) => sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)];
  const round = (v: number) => Math.round(v * 100) / 100;
  return {
    p50: round(rank(50)),
    p95: round(rank(95)),
    p99: round(rank(99)),
    max: round(sorted[sorted.length - 1]),
    mean: round(sorted.reduce((a, b) => a + b, 0) / sorted.length),
  };
}
