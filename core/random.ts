/**
 * A seeded pseudo-random generator (mulberry32): small, fast, and the same seed always
 * gives the same sequence. Generated models use it for their weights; tests use it so a
 * failing random run can be replayed from its seed.
 * @module
 */

/** Returns a function that yields numbers in [0, 1) determined by `seed`. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
