// The Python parsers under Ansible's INI inventory — literal_eval values (ini.py's
// _parse_value), shlex host lines, parse_address + expand_hostname_range host patterns —
// compared with ansible-core's own functions on hand-picked inputs and on a few thousand
// seeded random ones (one Python process for all), so the generator finds the next
// disagreement by itself. Skipped with one line where ansible-core is not installed.
import test from 'ava';
import { expandAnsibleHostPattern } from '../src/cli/targeting/ansible-host-pattern.js';
import { NotSupported, pythonValue, shlexSplit } from '../src/cli/targeting/python-text.js';
import { ansiblePython, askAnsible } from './helpers/ansible-python.js';
import { random } from './helpers/seeded-random.js';

function generate(rand: () => number, pieces: readonly string[], maxParts: number): string {
  const n = 1 + Math.floor(rand() * maxParts);
  let out = '';
  for (let i = 0; i < n; i++) out += pieces[Math.floor(rand() * pieces.length)];
  return out;
}

const VALUE_PIECES = [
  '0',
  '1',
  '7',
  '10',
  '010',
  '00',
  '1_0',
  '1__0',
  '_1',
  '0x1f',
  '0o17',
  '0b101',
  '0X',
  '1e3',
  '1E-2',
  '.5',
  '5.',
  '1.e2',
  'j',
  'J',
  "'",
  '"',
  "'''",
  'r',
  'b',
  'u',
  'f',
  'rb',
  'Br',
  '\\n',
  '\\x41',
  '\\u00e9',
  '\\101',
  '\\q',
  '\\',
  'é',
  'abc',
  ' ',
  '\t',
  '#',
  ',',
  ':',
  '[',
  ']',
  '(',
  ')',
  '{',
  '}',
  '-',
  '+',
  'True',
  'False',
  'None',
  'true',
  'null',
  '...',
  'x',
  '=',
  '{{',
  '}}',
];
const LINE_PIECES = ['web1', ' ', '  ', '\t', 'a=b', 'x="a b"', "y='c d'", '"', "'", '\\', '\\"', '#', 'c#d', 'ü', '=', '""', "''", 'z=\\ q'];
const PATTERN_PIECES = [
  'web',
  'db',
  'a',
  'Z',
  '1',
  '01',
  '-',
  '_',
  '.',
  ':',
  '::',
  ':22',
  ':0',
  '[',
  ']',
  '[1:3]',
  '[01:03]',
  '[a:c]',
  '[1:5:2]',
  '[a:e:2]',
  '[ab:c]',
  '[0:2]',
  '[3:1]',
  '[:2]',
  '[1:]',
  '[z:a]',
  '[a:Z]',
  '[1:3:0]',
  '10.0.0.',
  '[2001:db8::1]',
  'fe80::',
  'é',
  '|',
  '|x|',
];

const HAND_VALUES = [
  '1',
  '-1',
  '+5',
  '-(1)',
  '-(-1)',
  '--1',
  '-True',
  '010',
  '00',
  '0_0',
  '1_000',
  '0x1b5b',
  '0o17',
  '0b11',
  '1e3',
  '1.',
  '.5',
  '1.e2',
  '010.5',
  "'a'",
  '"a"',
  "'a' 'b'",
  "'a' b'c'",
  "b'x'",
  "u'x'",
  "r'\\n'",
  "f'x'",
  "'''x'''",
  "'\\x41\\n\\101'",
  "'\\N{EM DASH}'",
  "'unterminated",
  '[1, 2]',
  '[1, 2,]',
  '[,]',
  '(1)',
  '(1,)',
  '()',
  '1,2',
  '1,',
  '{}',
  "{'a': 1}",
  '{1: 2}',
  '{1, 2}',
  '{True: 1}',
  'True',
  'None',
  'true',
  'x # y',
  "'a' # c",
  '1 # c',
  '1 + 1',
  '1+2j',
  '1j',
  '...',
  '[1, [2, (3,)]]',
  "{'a': [1, {'b': None}]}",
  '',
  ' 1',
  '\t1',
  'a=b',
  '1e400',
];

const python = ansiblePython();
if (!python) console.log('ansible-ini-parsers: ansible-core is not installed (python3 -c "import ansible" fails): comparisons skipped');

type Answer = { value: unknown } | { error: string } | { unsupported: string };

// ANSIBLE_PARSERS_SEED=N explores other inputs; the suite runs seed 15.
const rand = random(Number(process.env.ANSIBLE_PARSERS_SEED ?? 15));
const values = [...HAND_VALUES, ...Array.from({ length: 3000 }, () => generate(rand, VALUE_PIECES, 6))];
const lines = Array.from({ length: 1000 }, () => generate(rand, LINE_PIECES, 6));
const patterns = Array.from({ length: 2000 }, () => generate(rand, PATTERN_PIECES, 5));

let answers: { values: Answer[]; lines: Answer[]; patterns: Answer[] } | undefined;
function ansible(): NonNullable<typeof answers> {
  if (!answers) {
    answers = askAnsible<NonNullable<typeof answers>>(python!, [{ id: 'parse', parse: { values, lines, patterns } }]).parse;
  }
  return answers!;
}

/** Our answer in the oracle's terms: a refusal of ours may only stand where Python has no JSON form. */
function ours(fn: () => unknown): Answer {
  try {
    return { value: fn() };
  } catch (err) {
    return err instanceof NotSupported ? { unsupported: err.message } : { error: (err as Error).message };
  }
}

function compare(kind: 'values' | 'lines' | 'patterns', inputs: readonly string[], fn: (input: string) => unknown) {
  return (t: import('ava').ExecutionContext) => {
    const expected = ansible()[kind];
    // A silent difference is a value of ours where Ansible's differs or fails. Refusing a
    // value Ansible reads is allowed (distrun stops and says why) but must stay rare.
    let disagreements = 0;
    let refusals = 0;
    inputs.forEach((input, i) => {
      const want = expected[i]!;
      const got = ours(() => fn(input));
      const report = `${JSON.stringify(input)}: Ansible ${JSON.stringify(want)}, distrun ${JSON.stringify(got)}`;
      if ('value' in got) {
        if (!('value' in want) || JSON.stringify(got.value) !== JSON.stringify(want.value)) {
          if (disagreements++ < 10) t.log(report);
        }
      } else if ('value' in want) {
        if ('error' in got) {
          if (disagreements++ < 10) t.log(report);
        } else if (refusals++ < 3) t.log(`refused: ${report}`);
      }
    });
    t.is(disagreements, 0);
    t.true(refusals <= inputs.length / 100, `${refusals} refusals`);
  };
}

(python ? test : test.skip)("values as ini.py's _parse_value (literal_eval, else the text)", compare('values', values, pythonValue));
(python ? test : test.skip)('host lines as shlex.split(comments=True)', compare('lines', lines, shlexSplit));
(python ? test : test.skip)(
  'host patterns as _expand_hostpattern (parse_address, expand_hostname_range)',
  compare('patterns', patterns, (p) => {
    const { hosts, port } = expandAnsibleHostPattern(p);
    return [hosts, port ?? null];
  }),
);
