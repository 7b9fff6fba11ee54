// mulberry32: a small seeded generator, so a generated case is the same on every run and
// machine. (test/nodeset-differential.test.ts and the YAML generator carry copies of it:
// they can use this one.)
export function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
