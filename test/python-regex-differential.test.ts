// python-regex.ts against Python itself: seeded random regexes and globs, made of the
// pieces where the two engines differ (braces, classes, anchors, escapes, quantifiers),
// applied to a set of names with re.match and fnmatch (test/helpers/python-regex-oracle.py,
// one python process; the names are printable ASCII, where the class escapes agree; names
// with a newline and outside ASCII are in test/ansible-pattern.test.ts). A translation must match the same names, fail where Python fails,
// or be refused.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { fnmatchRegExp, pythonRegExp, RegexProblem } from '../src/cli/targeting/python-regex.js';
import { random } from './helpers/seeded-random.js';

const oracle = fileURLToPath(new URL('../../test/helpers/python-regex-oracle.py', import.meta.url));

const NAMES = [
  'web1',
  'web12',
  'db-2',
  'a',
  '',
  'ab',
  'aab',
  'a{2}',
  'x.y',
  'x-y',
  ']',
  '[',
  '{',
  '}',
  'A1',
  'a b',
  'a\\b',
  '-',
  '^x',
  'x$',
  'ba',
  'abab',
  'a*',
];
const REGEX_PIECES = [
  'a',
  'b',
  'w',
  'e',
  '1',
  '.',
  '*',
  '+',
  '?',
  '*?',
  '{2}',
  '{,2}',
  '{1,}',
  '{',
  '}',
  '{}',
  '{x}',
  '[ab]',
  '[^a]',
  '[]a]',
  '[a-]',
  '[-a]',
  '[a\\-z]',
  '(',
  ')',
  '(?:',
  '(?=',
  '(?!',
  '|',
  '^',
  '$',
  '\\d',
  '\\w',
  '\\s',
  '\\W',
  '\\b',
  '\\B',
  '\\.',
  '\\-',
  '\\{',
  '\\\\',
  '\\A',
  '\\Z',
  '\\n',
  '\\x61',
  '[.]',
  '\\]',
  ']',
  'x',
  'y',
  '-',
  ' ',
  '\\S',
  '\\D',
  '[\\s]',
  '[\\w-]',
  '[^\\d]',
  '{0}',
  '{1,2}?',
  '{2,1}',
  '\\0',
  '\\8',
  '[a-\\d]',
  '\\u0061',
  '\\U00000061',
  '\\x6',
  '[^]',
  '[]',
  '\\',
  '#',
  '(?#x)',
  '(?i)',
  '\\z',
  '[\\b]',
  '[\\A]',
  '\\*',
  '+?',
  '??',
  '[\\]]',
  '[a-a]',
  '[b-a]',
  '(a)',
  '(?:)',
  '{,}',
  '\\$',
  '\\^',
];
const GLOB_PIECES = [
  'a',
  'b',
  'w',
  '*',
  '?',
  '[ab]',
  '[!a]',
  '[]a]',
  '[a-]',
  '[z-a]',
  '[!]',
  '[',
  ']',
  '-',
  '.',
  '\\',
  '{',
  'x',
  'y',
  '$',
  '^',
  '[a-c-e]',
  '[!-]',
  '[--a]',
];

test('random regexes and globs match what Python matches (re.match, fnmatch)', (t) => {
  const python = ['python3', '/usr/bin/python3'].find((py) => spawnSync(py, ['-c', ''], { stdio: 'ignore' }).status === 0);
  if (!python) {
    t.log('no python3: skipped');
    t.pass();
    return;
  }
  const rand = random(Number(process.env.DISTRUN_PATTERN_SEED ?? 15));
  const build = (pieces: string[]) => Array.from({ length: 1 + Math.floor(rand() * 7) }, () => pieces[Math.floor(rand() * pieces.length)]).join('');
  const regexes = [...new Set(Array.from({ length: 1500 }, () => build(REGEX_PIECES)))];
  const globs = [...new Set(Array.from({ length: 600 }, () => build(GLOB_PIECES)))];
  const run = spawnSync(python, [oracle], { input: JSON.stringify({ regexes, globs, names: NAMES }), encoding: 'utf8', maxBuffer: 64 << 20 });
  t.is(run.status, 0, run.stderr);
  const answer = JSON.parse(run.stdout) as {
    regexes: Array<{ error?: string; match?: boolean[] }>;
    globs: Array<{ error?: string; match?: boolean[] }>;
  };
  let refused = 0;
  let compared = 0;
  const check = (source: string, kind: 'regex' | 'glob', want: { error?: string; match?: boolean[] }) => {
    let re: RegExp;
    try {
      re = kind === 'regex' ? pythonRegExp(source, NAMES) : fnmatchRegExp(source);
    } catch (err) {
      if (!(err instanceof RegexProblem)) throw err;
      if (err.kind === 'unsupported') refused += 1;
      else t.truthy(want.error, `${kind} ${JSON.stringify(source)}: distrun says invalid (${err.message}), Python compiles it`);
      return;
    }
    t.is(want.error, undefined, `${kind} ${JSON.stringify(source)}: Python fails (${want.error}), distrun compiles ${re}`);
    if (want.match) {
      compared += 1;
      t.deepEqual(
        NAMES.map((n) => re.test(n)),
        want.match,
        `${kind} ${JSON.stringify(source)} as ${re}`,
      );
    }
  };
  regexes.forEach((r, i) => check(r, 'regex', answer.regexes[i]!));
  globs.forEach((g, i) => check(g, 'glob', answer.globs[i]!));
  t.log(`${regexes.length} regexes and ${globs.length} globs: ${compared} compared over ${NAMES.length} names, ${refused} refused`);
});
