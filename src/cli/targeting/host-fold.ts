// Folding host names into ranges exactly as ClusterShell 1.9 writes a node set (`nodeset -f`,
// clush -b headers), so a folded list can be pasted into clush and back into distrun.
// A name is split into text and digit groups; names with the same text form one pattern
// (`rack%s-node%s`) and every digit group is a dimension. The steps below mirror
// ClusterShell's NodeSet, RangeSet and RangeSetND (file and function named at each step).
// Pure functions, no I/O.

/** The indexes of one dimension, as written (padding is part of an index: 1 and 01 differ). */
type RangeSet = ReadonlySet<string>;
/** One folded block of an n-dimensional pattern: a range set per dimension. */
type Vector = readonly RangeSet[];

// ClusterShell cannot read these back as one name (brackets, its set operators, spaces,
// its group prefix), and an IPv6 address folded on its digit groups helps no one: such
// names are written as they are.
const UNFOLDABLE = /[[\],!&^*?\s]|^@|:.*:/;

const isPadded = (digits: string) => digits.length > 1 && digits.startsWith('0');

const byText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

// RangeSet._sorted: by length, then as text — 1…9, then 00…99 (padded and unpadded of that
// length together), then 000… — so `n[9,08,10]` is ClusterShell's order, not numeric order.
const byLengthThenText = (a: string, b: string) => a.length - b.length || byText(a, b);

const sortedCache = new WeakMap<RangeSet, string[]>();
function sorted(set: RangeSet): string[] {
  let list = sortedCache.get(set);
  if (!list) sortedCache.set(set, (list = [...set].sort(byLengthThenText)));
  return list;
}

// RangeSet._slices_padding without autostep (clush's default), line by line: a range is a
// run of consecutive numbers; the padding of a run comes from its first index (a padded run
// keeps its width, 08-11; an unpadded one takes no padded index), so n01…n100 is `01-99,100`.
// Numbers that are not consecutive still form a pending run of one step whose first index
// sets the padding for the next: that is why ClusterShell writes `08,99,100-102`, not
// `08,99-102`, and this must write the same.
function formatRangeSet(set: RangeSet): string {
  const parts: string[] = [];
  const write = (n: bigint, pad: number) => n.toString().padStart(pad, '0');
  const single = (n: bigint, pad: number) => parts.push(write(n, pad));
  const range = (start: bigint, last: bigint, pad: number) =>
    parts.push(start === last ? write(start, pad) : `${write(start, pad)}-${write(last, pad)}`);
  let padded = false;
  let pad = 0;
  let start: bigint | undefined;
  let step: bigint | undefined;
  let last = 0n;
  const begin = (index: string, value: bigint) => {
    padded = isPadded(index);
    pad = index.length;
    start = value;
  };
  for (const index of sorted(set)) {
    const value = BigInt(index);
    if (start === undefined) {
      begin(index, value);
      last = value;
      continue;
    }
    const paddingMismatch = padded ? index.length !== pad : isPadded(index);
    const stepMismatch = !paddingMismatch && step !== undefined && step !== value - last;
    if (paddingMismatch || stepMismatch) {
      const runPad = padded ? pad : 0;
      if (step === undefined || step === 1n) {
        range(start, last, runPad);
        begin(index, value);
      } else {
        // A pending run of another step: its numbers one by one, but for the last one when
        // only the step broke, which starts the next run (keeping this run's padding).
        const stop = paddingMismatch ? last + 1n : last - step + 1n;
        for (let n = start; n < stop; n += step) single(n, runPad);
        if (paddingMismatch) begin(index, value);
        else start = last;
      }
      step = stepMismatch ? value - last : undefined;
      last = value;
      continue;
    }
    step = value - last;
    last = value;
  }
  if (start !== undefined) {
    const runPad = padded ? pad : 0;
    if (step === undefined || step === 1n) range(start, last, runPad);
    else for (let n = start; n <= last; n += step) single(n, runPad);
  }
  return parts.join(',');
}

const formatDimension = (set: RangeSet) => (set.size > 1 ? `[${formatRangeSet(set)}]` : sorted(set)[0]!);

const isSubset = (a: RangeSet, b: RangeSet) => a.size <= b.size && [...a].every((i) => b.has(i));
const isEqual = (a: RangeSet, b: RangeSet) => a.size === b.size && isSubset(a, b);
const isDisjoint = (a: RangeSet, b: RangeSet) => [...a].every((i) => !b.has(i));

// RangeSetND._fold_multivariate_merge, step by step: two vectors merge when they differ in
// at most one dimension, and there either disjointly (union) or one containing the other.
function mergePair(a: Vector, b: Vector): Vector | undefined {
  const merged: RangeSet[] = [];
  let differences = 0;
  for (let d = 0; d < a.length; d++) {
    const [x, y] = [a[d]!, b[d]!];
    if (isEqual(x, y)) {
      merged.push(x);
      continue;
    }
    differences += 1;
    if (differences > 1) return undefined;
    if (isDisjoint(x, y)) merged.push(new Set([...x, ...y]));
    else if (isSubset(x, y) || isSubset(y, x)) merged.push(x.size > y.size ? x : y);
    else return undefined;
  }
  return merged;
}

// RangeSetND._sort: larger vectors first, then dimension by dimension larger sets first, then
// lower first and last index (compared as text, as Python compares the strings). Stable.
function sortVectors(vectors: Vector[]): void {
  const key = (v: Vector) => ({
    size: v.reduce((n, set) => n * set.size, 1),
    dims: v.map((set) => ({ size: set.size, first: sorted(set)[0]!, last: sorted(set).at(-1)! })),
  });
  const keys = new Map(vectors.map((v) => [v, key(v)]));
  vectors.sort((va, vb) => {
    const [a, b] = [keys.get(va)!, keys.get(vb)!];
    if (a.size !== b.size) return b.size - a.size;
    for (let d = 0; d < a.dims.length; d++) {
      const [x, y] = [a.dims[d]!, b.dims[d]!];
      const order = y.size - x.size || byText(x.first, y.first) || byText(x.last, y.last);
      if (order !== 0) return order;
    }
    return 0;
  });
}

// Easy passes first (each vector against its neighbours until one does not merge), then
// full passes (each against all) until nothing changes, as ClusterShell does.
function mergeVectors(vectors: Vector[]): Vector[] {
  let full = false;
  let changed = true;
  while (changed) {
    changed = false;
    sortVectors(vectors);
    let i = 0;
    while (i + 1 < vectors.length) {
      let item = vectors[i]!;
      let j = i + 1;
      i += 1;
      while (j < vectors.length) {
        const merged = mergePair(item, vectors[j]!);
        if (merged) {
          changed = true;
          item = vectors[i - 1] = merged;
          vectors.splice(j, 1);
        } else if (!full) {
          break;
        } else {
          j += 1;
        }
      }
    }
    if (!changed && !full) changed = full = true;
  }
  return vectors;
}

// RangeSetND._fold: when all points agree on every dimension but one, the pattern is one
// vector (univariate); otherwise each distinct point starts as its own vector and merges.
function foldPoints(points: readonly (readonly string[])[]): Vector[] {
  const dims = points[0]!.map((_, d) => new Set(points.map((p) => p[d]!)));
  if (points.length === 1 || dims.filter((set) => set.size > 1).length <= 1) return [dims];
  return mergeVectors(points.map((p) => p.map((index) => new Set([index]))));
}

interface Pattern {
  /** The text around the digit groups: one more than there are dimensions. */
  texts: string[];
  points: string[][];
}

// ParsingEngine._scan_string_single: `(\D*)(\d*)` pieces. The sort key is ClusterShell's
// pattern string (`%` escaped, `%s` per digit group), which decides the order of the output.
function splitName(name: string): { key: string; texts: string[]; digits: string[] } {
  const texts: string[] = [];
  const digits: string[] = [];
  for (const [, text, number] of name.matchAll(/(\D*)(\d*)/g)) {
    if (text === '' && number === '') continue;
    texts.push(text!);
    if (number !== '') digits.push(number!);
  }
  if (texts.length === digits.length) texts.push('');
  return { key: texts.map((t) => t.replaceAll('%', '%%')).join('%s'), texts, digits };
}

/**
 * Folds host names as ClusterShell's `nodeset -f` does: on every digit group, padding kept
 * per width, patterns in ClusterShell's order — `rack1-node01,rack1-node02,rack2-node01,
 * rack2-node02,db1` → `db1,rack[1-2]-node[01-02]`; n01…n100 → `n[01-99,100]`.
 */
export function foldHosts(names: readonly string[]): string {
  const patterns = new Map<string, Pattern>();
  const plain = new Map<string, string>();
  for (const name of new Set(names)) {
    if (name === '') continue;
    const { key, texts, digits } = splitName(name);
    if (digits.length === 0 || UNFOLDABLE.test(name)) {
      plain.set(name.replaceAll('%', '%%'), name);
      continue;
    }
    const pattern = patterns.get(key) ?? { texts, points: [] };
    pattern.points.push(digits);
    patterns.set(key, pattern);
  }
  const blocks: Array<[string, string[]]> = [...plain].map(([key, name]) => [key, [name]]);
  for (const [key, { texts, points }] of patterns) {
    const written = foldPoints(points).map((vector) => texts.map((t, d) => (d < vector.length ? t + formatDimension(vector[d]!) : t)).join(''));
    blocks.push([key, written]);
  }
  return blocks
    .sort(([a], [b]) => byText(a, b))
    .flatMap(([, written]) => written)
    .join(',');
}
