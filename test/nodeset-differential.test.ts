// distrun's host ranges against the real ClusterShell (its Python API, as `nodeset -e/-f/-c`
// use it): a corpus of tricky node sets, then a few thousand seeded random ones. For each,
// both must accept or both refuse; expand to the same set and count; fold the same names
// to the same string; and each side must read the folded string back as the same set.
// DISTRUN_NODESET_SEED and DISTRUN_NODESET_CASES run other or more random cases, to go
// looking for the next disagreement.
import test from 'ava';
import { UsageError } from '../src/errors.js';
import { expandHostList, foldHosts } from '../src/cli/targeting/host-range.js';
import { askClusterShell, clusterShellPython, type OracleAnswer, type OracleRequest } from './helpers/clustershell.js';
import { random } from './helpers/seeded-random.js';

const python = clusterShellPython();
if (!python) console.log('nodeset-differential: skipped, ClusterShell is not installed (Debian package clustershell)');
const withClusterShell = python ? test : test.skip;

const SEED = Number(process.env.DISTRUN_NODESET_SEED ?? 15);
const CASES = Number(process.env.DISTRUN_NODESET_CASES ?? 2000);

const CORPUS = [
  // steps, single values, lists, overlaps and order
  'n[1-10/2]',
  'n[01-10/3]',
  'n[0-20/5,3]',
  'n[3,1,2]',
  'n[1-3],n[2-5]',
  'n[1-3/1]',
  'n[5-5]',
  // zero, leading zeros, mixed padding, the 9/10, 99/100 and 999/1000 boundaries
  'n0',
  'n00',
  'n[0]',
  'n[00-10]',
  'n[0-00]',
  'n[0-10]',
  'n[07,7,007]',
  'n[9-11]',
  'n[08-11]',
  'n[098-101]',
  'n[01-99,100]',
  'n[99-100]',
  'n[999-1001]',
  'n[0099-0101]',
  'n[1-10],n[001-010]',
  'n[9],n[08-10]',
  // refused by both: widths, steps, order, empty parts
  'n[01-100]',
  'n[1-010]',
  'n[00-0]',
  'n[001-10]',
  'n[5/2]',
  'n[1-5/0]',
  'n[3-1]',
  'n[]',
  'n[1,,2]',
  'n[1-3',
  // several digit groups: products, grids with holes, IPv4-looking names, labels with a port
  'rack[1-2]-node[01-04]',
  'r1n01,r1n02',
  'r[1-3]n[01-02],r4n01',
  'x1y2z3',
  'x[1-2]y[1-2]z[1-2],x3y1z1',
  '10.0.0.[1-3]',
  '192.168.[0-1].[1-2]',
  '10.0.[0-1].[1-254/50]',
  'web[1-2]:7001',
  'n[1-2]-ib[0-1]',
  'web[1-3,7,10-12].example.com',
  'c[1-4]-gpu[0-3],c5-gpu0',
  // digits next to brackets (ClusterShell merges them into the range), ranges first
  'n1[0-2]',
  'n[1-2]0',
  'n0[1-9]',
  '[1-3]a',
  '[1-2].[3-4]',
  // names without digits, single nodes, spaces
  'login',
  'a.example.com,b.example.com',
  'solo7',
  'n[ 1 - 3 ]',
  ' n1 , n2 ',
];

// Where the two deliberately part: distrun reads Ansible's start:end, a product of adjacent
// brackets, and digits before a range of several widths literally; ClusterShell refuses
// those. ClusterShell reads negative indexes, which distrun refuses.
const DISTRUN_ONLY = ['n[1:3]', 'n[01:09:4]', 'n[1-2][3-4]', 'n0[1-10]', 'n[1-3/2]0'];
const CLUSTERSHELL_ONLY = ['n[-5]', 'n[-3-1]'];

type Ours = { names: string[] } | { error: string };

function ours(pattern: string): Ours {
  try {
    return { names: expandHostList(pattern) };
  } catch (err) {
    if (err instanceof UsageError) return { error: err.message };
    throw err;
  }
}

const asSet = (names: readonly string[]) => JSON.stringify([...new Set(names)].sort());

/**
 * Everything the two disagree on for these node sets, in words (empty when they agree).
 * Three oracle questions per accepted set: the set, its names as single nodes (fold), and
 * distrun's fold read back.
 */
function compare(python: string, patterns: readonly string[]): string[] {
  const mine = patterns.map(ours);
  const requests: OracleRequest[] = [];
  for (const [i, pattern] of patterns.entries()) {
    const m = mine[i]!;
    requests.push({ pattern });
    if ('names' in m) requests.push({ names: m.names }, { pattern: foldHosts(m.names) });
  }
  const answers = askClusterShell(python, requests);
  let next = 0;
  const problems: string[] = [];
  for (const [i, pattern] of patterns.entries()) {
    const m = mine[i]!;
    const theirs = answers[next++]!;
    const say = (what: string) => problems.push(`${JSON.stringify(pattern)}: ${what}`);
    if ('error' in m || 'error' in theirs) {
      if (!('error' in m)) next += 2;
      if ('error' in m !== 'error' in theirs) {
        say(
          'error' in m
            ? `distrun refuses (${m.error}), ClusterShell reads ${(theirs as { fold: string }).fold}`
            : `ClusterShell refuses (${(theirs as { error: string }).error}), distrun reads ${m.names.length} names`,
        );
      }
      continue;
    }
    const [folded, readBack] = [answers[next++]!, answers[next++]!] as [OracleAnswer, OracleAnswer];
    const mineFolded = foldHosts(m.names);
    if (asSet(m.names) !== asSet(theirs.expand)) say(`expands to ${asSet(m.names)}, ClusterShell to ${asSet(theirs.expand)}`);
    if (new Set(m.names).size !== theirs.count) say(`counts ${new Set(m.names).size}, ClusterShell ${theirs.count}`);
    if ('error' in folded) say(`ClusterShell cannot take the names one by one: ${folded.error}`);
    else if (mineFolded !== folded.fold) say(`folds to ${mineFolded}, ClusterShell to ${folded.fold}`);
    const mineBack = ours(mineFolded);
    if (!('names' in mineBack) || asSet(mineBack.names) !== asSet(m.names)) say(`distrun reads its fold ${mineFolded} back as another set`);
    if ('error' in readBack || asSet(readBack.expand) !== asSet(m.names)) say(`ClusterShell reads distrun's fold ${mineFolded} back as another set`);
  }
  return problems;
}

const report = (problems: readonly string[]) => `${problems.length} disagreements (seed ${SEED}):\n${problems.slice(0, 15).join('\n')}`;

withClusterShell('a corpus of tricky node sets: expand, fold, count and read back as ClusterShell', (t) => {
  const problems = compare(python!, CORPUS);
  t.deepEqual(problems, [], report(problems));
});

withClusterShell('the deliberate differences are still the only ones listed', (t) => {
  const answers = askClusterShell(
    python!,
    [...DISTRUN_ONLY, ...CLUSTERSHELL_ONLY].map((pattern) => ({ pattern })),
  );
  for (const [i, pattern] of DISTRUN_ONLY.entries()) {
    t.true('names' in ours(pattern), pattern);
    t.true('error' in answers[i]!, `ClusterShell now reads ${pattern}`);
  }
  for (const [i, pattern] of CLUSTERSHELL_ONLY.entries()) {
    t.true('error' in ours(pattern), pattern);
    t.false('error' in answers[DISTRUN_ONLY.length + i]!, `ClusterShell now refuses ${pattern}`);
  }
});

/** Random node sets in the syntax both read: names with 1–3 digit groups, ranges, steps, paddings. */
function nodeSetGenerator(seed: number) {
  const r = random(seed);
  const int = (n: number) => Math.floor(r() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
  const PREFIXES = ['node', 'n', 'rack', 'r', '', 'gpu', 'web-', 'db.', 'x'];
  const SEPARATORS = ['-', '.', 'n', '-node', 'c', '_', '-ib'];
  const SUFFIXES = ['', '', '', '.example.com', '-ipmi', 'z'];
  // Numbers near the places where widths change, where folding and padding go wrong.
  const value = () => {
    const k = r();
    if (k < 0.35) return int(13);
    if (k < 0.7) return Math.max(0, pick([9, 10, 99, 100, 999, 1000]) + int(5) - 2);
    return int(150);
  };
  const width = () => pick([0, 0, 0, 2, 3, 4]);
  const format = (n: number, w: number) => String(n).padStart(w, '0');
  const element = () => {
    const lo = value();
    const w = width();
    const kind = r();
    if (kind < 0.35) return format(lo, w);
    // Mostly well-formed; now and then backwards or of mixed widths, which both must refuse.
    const hi = r() < 0.05 ? Math.max(0, lo - 1 - int(3)) : lo + int(12);
    const hiWidth = r() < 0.08 ? width() : w;
    const range = `${format(lo, w)}-${format(hi, hiWidth)}`;
    return kind < 0.8 ? range : `${range}/${1 + int(4)}`;
  };
  const digitGroup = () => (r() < 0.3 ? format(value(), width()) : `[${Array.from({ length: 1 + int(3) }, element).join(',')}]`);
  const template = () => {
    const dims = 1 + int(3);
    return { prefix: pick(PREFIXES), separators: Array.from({ length: dims - 1 }, () => pick(SEPARATORS)), suffix: pick(SUFFIXES) };
  };
  const join = (t: ReturnType<typeof template>, groups: readonly string[]) =>
    t.prefix + groups.map((g, i) => g + (t.separators[i] ?? '')).join('') + t.suffix;
  return {
    /** A pattern with brackets, sometimes a list of two. */
    pattern(): string {
      const one = () => {
        const t = template();
        return join(t, Array.from({ length: t.separators.length + 1 }, digitGroup));
      };
      return r() < 0.2 ? `${one()},${one()}` : one();
    },
    /**
     * Single names of one or two shapes: a grid over a few values per digit group (mixed
     * padding) with holes, or names picked at random; sometimes a name without digits.
     */
    names(): string[] {
      const shapes = r() < 0.3 ? [template(), template()] : [template()];
      const names: string[] = [];
      for (const t of shapes) {
        const pools = Array.from({ length: t.separators.length + 1 }, () => Array.from({ length: 1 + int(5) }, () => format(value(), width())));
        const grid = pools.reduce<string[][]>((acc, pool) => acc.flatMap((p) => pool.map((v) => [...p, v])), [[]]);
        const chosen = r() < 0.5 ? grid.filter(() => r() > 0.15) : Array.from({ length: 1 + int(40) }, () => pick(grid));
        names.push(...chosen.map((groups) => join(t, groups)));
      }
      if (r() < 0.1 || names.length === 0) names.push(pick(['login', 'a.example.com', 'gw']));
      return names;
    },
  };
}

withClusterShell(`${CASES} random patterns and ${CASES} random name sets (seeded) agree with ClusterShell`, (t) => {
  const generate = nodeSetGenerator(SEED);
  const patterns: string[] = [];
  // Keep each set small (a product of three ranges can be large): the point is variety.
  while (patterns.length < CASES) {
    const pattern = generate.pattern();
    const m = ours(pattern);
    if ('error' in m || m.names.length <= 300) patterns.push(pattern);
  }
  for (let i = 0; i < CASES; i++) patterns.push(generate.names().join(','));
  const problems = compare(python!, patterns);
  t.deepEqual(problems, [], report(problems));
  // The generator must reach the interesting places, or agreement proves little.
  const refused = patterns.filter((p) => 'error' in ours(p)).length;
  t.true(refused > CASES / 50 && refused < CASES / 2, `${refused} refused`);
  t.true(
    patterns.some((p) => p.includes('/')),
    'steps',
  );
  const multiDimensional = patterns.slice(CASES).filter((p) => /\[[^\]]*\][^,]*\[/.test(foldHosts(expandHostList(p))));
  t.true(multiDimensional.length > 20, `${multiDimensional.length} multi-dimensional folds`);
});
