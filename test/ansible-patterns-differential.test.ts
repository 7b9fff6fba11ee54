// Host patterns against the real ansible-core: every fixture inventory in
// test/fixtures/ansible/patterns/ with several hundred patterns made from its names, and a
// seeded generator of random inventories and patterns. For each pattern, distrun's port
// (evaluatePattern) must give Ansible's hosts in Ansible's order, its warnings, and fail
// where Ansible fails; what distrun selects (selectAnsibleHosts) must be Ansible's hosts
// or an error where Ansible would warn, come out empty or use its implicit localhost.
// One python process per inventory (test/helpers/ansible-pattern-oracle.py).
import test, { type ExecutionContext } from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { viewOf, type AnsibleView } from '../src/cli/targeting/ansible-data.js';
import { evaluatePattern, PatternError, selectAnsibleHosts } from '../src/cli/targeting/ansible-pattern.js';
import { parseInventory } from '../src/cli/targeting/inventory.js';
import { EmptySelectionError } from '../src/errors.js';
import { plainAnsibleYaml } from './helpers/ansible-plain-yaml.js';
import { cleanupAll, distrun, tempDir } from './helpers/fleet.js';
import { random } from './helpers/seeded-random.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const oracle = join(root, 'test', 'helpers', 'ansible-pattern-oracle.py');
const fixtures = join(root, 'test', 'fixtures', 'ansible', 'patterns');

/** A python that has ansible-core (pyenv's python3 may not; ansible's own does). */
const python = ['python3', '/usr/bin/python3'].find((py) => spawnSync(py, ['-c', 'import ansible'], { stdio: 'ignore' }).status === 0);

interface OracleResult {
  hosts?: string[];
  error?: string;
  warnings: string[];
}
interface OracleOutput {
  view: { hosts: string[]; groups: Record<string, string[]> };
  results: OracleResult[];
}

function ask(file: string, patterns: string[]): OracleOutput {
  const run = spawnSync(python!, [oracle, file], { input: JSON.stringify(patterns), encoding: 'utf8', maxBuffer: 64 << 20 });
  if (run.status !== 0) throw new Error(`oracle failed: ${run.stderr}`);
  return JSON.parse(run.stdout) as OracleOutput;
}

/** The inventory as Ansible's yaml plugin builds it (checked against the oracle's by compareView). */
function viewFor(file: string): AnsibleView {
  return viewOf(plainAnsibleYaml(readFileSync(file, 'utf8'), file), 'yaml');
}

/** distrun's own reader's view, when it gives one (readers that predate AnsibleView do not). */
function readerView(t: ExecutionContext, file: string): AnsibleView | undefined {
  try {
    return parseInventory(readFileSync(file, 'utf8'), file).ansible;
  } catch (err) {
    t.log(`distrun's reader does not take ${file}: ${(err as Error).message}`);
    return undefined;
  }
}

// ---- patterns made from an inventory's names -----------------------------------------------

/** Python regex and fnmatch corners: each must match what Python matches, fail where it fails, or be refused. */
const CORNERS = [
  '~web[0-9]$',
  '~.*\\.org',
  '~(web|db)\\d',
  '~[^w]',
  '~\\w+-\\d+',
  '~x{2}',
  '~\\Aweb',
  '~web\\Z',
  '~we?b',
  '~.+?1',
  '~[]a]',
  '~[a-]',
  '~[\\d-z]',
  '~\\',
  '~(?=web)w',
  '~(?!web).*',
  '~(?i)web',
  '~(?s).',
  '~(?x)w e b',
  '~a**',
  '~*',
  '~a{2',
  '~a{}',
  '~{1}',
  '~[z-a]',
  '~\\q',
  '~\\x77',
  '~\\u0077eb',
  '~(?<=a)b',
  '~a|',
  '~|',
  '~()',
  '~$',
  '~^',
  '~\\b',
  '~web\\b',
  '~n.de-0?1',
  '~(?:no|h)',
  '~(?=n)*',
  '~[.]',
  '~[\\w.]+$',
  '~\\S+\\.',
  '~\\D',
  '~[^\\W]',
  '~(a)\\1',
  '~(?P<n>a)',
  '~(?#c)a',
  '~(?>a)',
  '~a*+',
  '~node-0[12]',
  '~.*1$',
  '~.*[13579]$',
  '~WEB',
  '~.{3}$',
  '~.{,3}$',
  '~.{3,}$',
  '~x.y$',
  '~]',
  '~}',
  '~a{1}?',
  '~[[]',
  '~\\]',
  '~[\\]]',
  '~.*\\Z',
  '[!a-c]*',
  '[z-a]*',
  '[]]*',
  '[!]*',
  '*[',
  '[a-]*',
  '[-a]*',
  '[a-c-e]*',
  'w[!]x]*',
  '[!w]*',
  '*.*',
  '?',
  '??',
  '???*',
  '*-0?',
  '[n]ode*',
  '?afé1',
  '?nicode',
  '𝔘*',
  '~.nicode',
  '~[𝔘]',
  '[!a]nicode',
  '~caf\\u00e91',
  'gr?ppe',
  '~gr.ppe$',
  '[ü]*',
  '[[]*',
  '*[0-9]',
  '*[!0-9]',
  'h*.org',
  '*.example.*',
  'node-[01][0-9]',
  '[a-]',
  '[!-]*',
  'a\\*',
  '[\\]*',
  '*\\',
];

function namePatterns(view: AnsibleView): string[] {
  const groups = view.groups.map((g) => g.name);
  const hosts = view.hosts;
  const names = [...groups, ...hosts];
  const out = new Set<string>([
    ...CORNERS,
    'all',
    '*',
    '~',
    '~.*',
    'all:!all',
    '!all',
    '&all',
    'nosuch',
    'nosuch:all',
    'all:!nosuch',
    'localhost',
    '127.0.0.1',
    '::1',
    'localhost:all',
    'all:!localhost',
    '&localhost',
    '!',
    '~[',
    '~(?P<n>a)',
    '~a{,2}b',
    '~(a',
    '',
  ]);
  for (const g of groups) {
    for (const p of [
      g,
      `&${g}`,
      `!${g}`,
      `${g}[0]`,
      `${g}[1]`,
      `${g}[-1]`,
      `${g}[-2]`,
      `${g}[9]`,
      `${g}[-9]`,
      `${g}[0:1]`,
      `${g}[1:2]`,
      `${g}[0:]`,
      `${g}[1:]`,
      `${g}[2:0]`,
      `${g}[1:9]`,
      `${g}[5:9]`,
      `${g}[0-1]`,
      `${g}*`,
      `${g.slice(0, 1)}*`,
      `*${g.slice(-1)}`,
      `${g.slice(0, -1)}?`,
      `~${g}`,
      `~${g.slice(0, 2)}`,
      `~^${g}$`,
      `all:!${g}`,
      `!${g}:all`,
      `${g}:&all`,
      `${g}[0]:!${g}`,
      ` ${g} `,
      `${g},`,
      `${g.toUpperCase()}`,
    ])
      out.add(p);
  }
  for (const h of hosts) {
    for (const p of [
      h,
      `!${h}`,
      `&${h}`,
      `${h}*`,
      `~${h.replace(/[.]/g, '\\.')}`,
      `${h.slice(0, -1)}?`,
      `${h}:22`,
      `all:!${h}`,
      `[${h[0]}]*`,
      `[!${h[0]}]*`,
    ])
      out.add(p);
  }
  // Pairs: unions, intersections, exclusions, with ':' and ','.
  for (let i = 0; i < names.length; i++) {
    for (let j = 0; j < names.length; j += 3) {
      const a = names[i]!;
      const b = names[(i + j + 1) % names.length]!;
      out
        .add(`${a}:${b}`)
        .add(`${a}:&${b}`)
        .add(`${a}:!${b}`)
        .add(`${a},&${b}`)
        .add(`!${b},${a}`)
        .add(`&${b}:${a}:!${names[(i + 2 * j) % names.length]}`);
    }
  }
  return [...out];
}

// ---- comparison ---------------------------------------------------------------------------

interface Tally {
  compared: number;
  refused: number;
  strictErrors: number;
}

function compare(t: ExecutionContext, view: AnsibleView, patterns: string[], results: OracleResult[], where: string, tally: Tally): void {
  patterns.forEach((pattern, i) => {
    const want = results[i]!;
    const label = `${where}: pattern ${JSON.stringify(pattern)}`;
    let got;
    try {
      got = evaluatePattern(view, pattern);
    } catch (err) {
      if (!(err instanceof PatternError)) throw err;
      if (err.kind === 'refused') {
        tally.refused += 1;
        return;
      }
      t.truthy(want.error, `${label}: distrun fails (${err.message}), Ansible gives ${JSON.stringify(want.hosts)}`);
      return;
    }
    t.is(want.error, undefined, `${label}: Ansible fails (${want.error}), distrun gives ${JSON.stringify(got.hosts)}`);
    if (want.error !== undefined) return;
    tally.compared += 1;
    if (got.exact) t.deepEqual(got.hosts, want.hosts, label);
    else t.deepEqual([...got.hosts].sort(), [...want.hosts!].sort(), `${label} (as a set: Ansible's order is a Python-set accident here)`);
    t.deepEqual(got.warnings, want.warnings, `${label}: warnings`);

    // What distrun selects: Ansible's hosts, or an error where Ansible would not be sure.
    const both = (s: { pattern: string }) =>
      view.hosts.includes(s.pattern.replace(/^[&!]/, '')) && view.groups.some((g) => g.name === s.pattern.replace(/^[&!]/, ''));
    const doubtful =
      want.warnings.length > 0 ||
      want.hosts!.length === 0 ||
      got.steps.some((s) => s.implicit !== undefined || (s.subscript && s.matched === 0) || both(s));
    try {
      const chosen = selectAnsibleHosts(view, pattern).map((c) => c.host);
      t.false(doubtful, `${label}: distrun selects ${JSON.stringify(chosen)} where it should refuse`);
      if (got.exact) t.deepEqual(chosen, want.hosts, `${label}: selection`);
    } catch (err) {
      if (!(err instanceof PatternError || err instanceof EmptySelectionError)) throw err;
      tally.strictErrors += 1;
      t.true(doubtful, `${label}: distrun refuses (${err.message}) though Ansible gives ${JSON.stringify(want.hosts)} without a warning`);
    }
  });
}

/** The inventory as distrun holds it matches Ansible's (groups whose order is defined). */
function compareView(t: ExecutionContext, view: AnsibleView, oracleView: OracleOutput['view'], where: string): void {
  t.deepEqual(view.hosts, oracleView.hosts, `${where}: hosts`);
  t.deepEqual(
    view.groups.map((g) => g.name),
    Object.keys(oracleView.groups),
    `${where}: groups`,
  );
  for (const g of view.groups) {
    const want = oracleView.groups[g.name]!;
    if (g.ordered) t.deepEqual(g.hosts, want, `${where}: hosts of ${g.name}`);
    else t.deepEqual([...g.hosts].sort(), [...want].sort(), `${where}: hosts of ${g.name} (as a set)`);
  }
}

// ---- random inventories -------------------------------------------------------------------

const GROUP_POOL = ['web', 'webx', 'db', 'db2', 'prod', 'stage', 'eu', 'us', 'edge', 'cache', 'w', 'all2', 'ungr', 'a.b', 'mail'];
const HOST_POOL = [
  'all',
  'ungrouped',
  'localhost',
  '127.0.0.1',
  'web1',
  'web2',
  'web10',
  'db1',
  'db01',
  'mail',
  'w',
  'h.example.com',
  'edge-1',
  'x_y',
  'eu1',
  'cache9',
  'app',
  'app2',
  'prod',
];

/** A random plain YAML inventory: groups (a DAG of children), hosts in one or more groups. */
function randomInventory(rand: () => number): string {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)]!;
  const shuffled = <T>(items: readonly T[]): T[] =>
    [...items]
      .map((v) => ({ v, k: rand() }))
      .sort((x, y) => x.k - y.k)
      .map(({ v }) => v);
  const groups = shuffled(GROUP_POOL).slice(0, 2 + Math.floor(rand() * 7));
  const hosts = shuffled(HOST_POOL).slice(0, 2 + Math.floor(rand() * 10));
  const lines = ['all:', '  hosts:'];
  for (const h of hosts) if (rand() < 0.15) lines.push(`    ${h}:`);
  lines.push('  children:');
  groups.forEach((g, i) => {
    lines.push(`    ${g}:`);
    const members = hosts.filter(() => rand() < 0.3);
    if (members.length > 0) lines.push('      hosts:', ...shuffled(members).map((h) => `        ${h}:`));
    // Children only from later groups: no cycles.
    const children = groups.slice(i + 1).filter(() => rand() < 0.25);
    if (children.length > 0) lines.push('      children:', ...children.map((c) => `        ${c}:`));
    if (members.length === 0 && children.length === 0 && rand() < 0.5) lines.push(`      hosts:`, `        ${pick(hosts)}:`);
  });
  return `${lines.join('\n')}\n`;
}

function randomPattern(rand: () => number, view: AnsibleView): string {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)]!;
  const names = [...view.groups.map((g) => g.name), ...view.hosts];
  const n = () => Math.floor(rand() * 5);
  const atom = (): string => {
    const name = pick(names);
    switch (Math.floor(rand() * 12)) {
      case 0:
        return `${name.slice(0, 1 + Math.floor(rand() * name.length))}*`;
      case 1:
        return `*${name.slice(Math.floor(rand() * name.length))}`;
      case 2:
        return name.replace(/./, '?');
      case 3:
        return `~${name.slice(0, 1 + Math.floor(rand() * name.length)).replace(/\./g, '\\.')}${pick(['', '.*', '\\d', '[0-9]+$', '|db'])}`;
      case 4:
        return `${name}[${rand() < 0.3 ? '-' : ''}${n()}]`;
      case 5:
        return `${name}[${n()}:${pick(['', String(n())])}]`;
      case 6:
        return pick(['all', 'ungrouped', 'nosuch', 'localhost', `${name}x`]);
      case 7:
        return `[${pick(['', '!'])}${name[0]}${pick(['', '-z', 'x', ']'])}]*`;
      case 8:
        return pick(CORNERS);
      case 9:
        return `~${pick(['', '^', '.*'])}${name.slice(1, 3)}${pick(['', '$', '\\d*$', '|w', '(?=.)', '{1,2}'])}`;
      default:
        return name;
    }
  };
  const count = 1 + Math.floor(rand() * 4);
  const sep = pick([':', ',', ', ', ' ', ':', ',']);
  const parts: string[] = [];
  for (let i = 0; i < count; i++) parts.push(`${i === 0 && rand() < 0.8 ? '' : pick(['', '&', '!'])}${atom()}`);
  return parts.join(sep);
}

// ---- the tests ----------------------------------------------------------------------------

test.after.always(cleanupAll);

// Without ansible-core every test below is skipped, for the reason printed here.
const withAnsible = python ? test : test.skip;
if (!python) console.log('ansible-patterns-differential: skipped: ansible-core is not installed (python3 -c "import ansible" fails)');

for (const name of readdirSync(fixtures).filter((f) => f.endsWith('.yml'))) {
  withAnsible(`host patterns on ${name} are ansible-core's`, (t) => {
    const file = join(fixtures, name);
    const built = viewFor(file);
    const patterns = namePatterns(built);
    const answer = ask(file, patterns);
    compareView(t, built, answer.view, name);
    // The patterns run on what distrun itself reads, when its reader gives a view.
    const own = readerView(t, file);
    if (own) compareView(t, own, answer.view, `${name} (distrun's reader)`);
    const view = own ?? built;
    const tally: Tally = { compared: 0, refused: 0, strictErrors: 0 };
    compare(t, view, patterns, answer.results, name, tally);
    t.true(patterns.length >= 300, `${patterns.length} patterns`);
    t.log(
      `${name}: ${patterns.length} patterns, ${tally.compared} compared, ${tally.refused} refused, ${tally.strictErrors} stopped by distrun's strict rules`,
    );
  });
}

withAnsible('distrun hosts -g PATTERN --explain lists the hosts ansible --list-hosts lists, in its order', async (t) => {
  const file = join(fixtures, 'basic.yml');
  const patterns = ['web[0:1]:&prod', 'w*:!web1', '~(web|db)[12]', 'web[0]:db[-1]', '!web:&prod', 'staging,&prod', 'prod[1:]', 'edge'];
  const answer = ask(file, patterns);
  const cwd = tempDir('distrun-patterns-cwd-');
  for (const [i, pattern] of patterns.entries()) {
    const result = await distrun(['hosts', '-i', file, '-g', pattern, '--explain'], { cwd });
    t.is(result.code, 0, `${pattern}: ${result.stderr}`);
    const lines = result.stdout.toString('utf8').trim().split('\n');
    t.deepEqual(
      lines.map((line) => line.split(/\s+/)[0]),
      answer.results[i]!.hosts,
      pattern,
    );
    t.true(
      lines.every((line) => line.includes(`-g: `)),
      `${pattern}: every line says what chose the host`,
    );
  }
  const refused = await distrun(['hosts', '-i', file, '-g', 'web:&staging'], { cwd });
  t.not(refused.code, 0);
  t.regex(refused.stderr, /basic\.yml: the selection is empty: the intersection web:&staging is empty/);
});

withAnsible('random inventories and patterns (seeded) agree with ansible-core', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'distrun-patterns-'));
  try {
    const tally: Tally = { compared: 0, refused: 0, strictErrors: 0 };
    let asked = 0;
    const seed = Number(process.env.DISTRUN_PATTERN_SEED ?? 15);
    const inventories = 6;
    for (let k = 0; k < inventories; k++) {
      const rand = random(seed * 1000 + k);
      const file = join(dir, `random-${k}.yml`);
      const text = randomInventory(rand);
      writeFileSync(file, text);
      let view: AnsibleView;
      try {
        view = readerView(t, file) ?? viewFor(file);
      } catch (err) {
        // A host named all or ungrouped in no group: ansible-core fails to load it too.
        t.throws(
          () => ask(file, []),
          undefined,
          `seed ${seed} inventory ${k}: distrun refuses (${(err as Error).message}), Ansible loads it:\n${text}`,
        );
        continue;
      }
      const patterns = Array.from({ length: 70 }, () => randomPattern(rand, view));
      asked += patterns.length;
      const answer = ask(file, patterns);
      const where = `seed ${seed} inventory ${k}:\n${text}`;
      compareView(t, view, answer.view, where);
      compare(t, view, patterns, answer.results, where, tally);
    }
    t.log(
      `seed ${seed}: ${asked} random patterns, ${tally.compared} compared, ${tally.refused} refused, ${tally.strictErrors} stopped by distrun's strict rules`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
