// The rule of src/cli's layers (docs/architecture.md), checked on the import statements
// of every file: commands → output → execution → targeting, never back up; the files
// directly in src/cli (options, exit codes, small helpers) import no layer; nothing but
// main.ts imports a command module.
import test from 'ava';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../src/cli/', import.meta.url));
const LAYERS = ['targeting', 'execution', 'output', 'commands'] as const;

const files = readdirSync(CLI, { recursive: true, encoding: 'utf8' })
  .filter((f) => f.endsWith('.ts'))
  .sort();

/** -1 for the shared files directly in src/cli; main.ts is above every layer. */
function rank(file: string): number {
  if (file === 'main.ts') return LAYERS.length;
  const folder = file.includes('/') ? file.slice(0, file.indexOf('/')) : undefined;
  return folder === undefined ? -1 : LAYERS.indexOf(folder as (typeof LAYERS)[number]);
}

/** The src/cli files one file imports (static, type-only, re-exports and dynamic). */
function importsOf(file: string): string[] {
  const text = readFileSync(join(CLI, file), 'utf8');
  const specs = [...text.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*)'(\.{1,2}\/[^']+)'/g)].map((m) => m[1]!);
  return specs.map((spec) => relative(CLI, join(CLI, dirname(file), spec)).replace(/\.js$/, '.ts')).filter((target) => !target.startsWith('..'));
}

test('every src/cli file is in a known layer', (t) => {
  t.true(files.length > 40);
  t.deepEqual(
    files.filter((f) => rank(f) === -1 && f.includes('/')),
    [],
  );
});

test('no layer imports a higher one, and no shared file imports a layer', (t) => {
  const wrong: string[] = [];
  for (const file of files) {
    for (const target of importsOf(file)) {
      if (rank(target) > rank(file) || (rank(file) === -1 && rank(target) !== -1)) wrong.push(`${file} imports ${target}`);
    }
  }
  t.deepEqual(wrong, []);
});

test('nothing but main.ts imports a command module', (t) => {
  const wrong = files.flatMap((file) =>
    importsOf(file)
      .filter((target) => target.startsWith('commands/') && file !== 'main.ts')
      .map((target) => `${file} imports ${target}`),
  );
  t.deepEqual(wrong, []);
});

test('the rule is read from real imports', (t) => {
  t.true(importsOf('main.ts').includes('commands/run.ts'));
  t.true(importsOf('execution/fanout.ts').includes('execution/outcome.ts'));
});
