// The man pages render without warnings and cannot drift from the programs: every long
// option in --help, every exit code and every environment variable the code reads is
// in the page.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EXIT_CONFIG_ERROR } from '../src/agent/main.js';
import { ExitCode } from '../src/cli/exit-codes.js';
import { AGENT, cleanupAll, distrun, run } from './helpers/fleet.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PAGES = { distrun: join(ROOT, 'man', 'distrun.1'), agent: join(ROOT, 'man', 'distrunner-agent.8') };

const groff = spawnSync('groff', ['--version'], { encoding: 'utf8' });
const haveGroff = groff.status === 0;
if (!haveGroff) console.log('man-pages: groff is not installed; the rendering checks are skipped');
const withGroff = haveGroff ? test : test.skip;
test.after.always(cleanupAll);

/** The page as a reader sees it, in plain text (no overstrikes), with every kind of hyphen as '-'. */
function render(page: string): string {
  const r = spawnSync('groff', ['-man', '-Tutf8', '-P-cbou', page], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`groff failed on ${page}: ${r.stderr}`);
  return r.stdout.replace(/[\u2010\u2011\u2212]/g, '-');
}

const longOptions = (help: string): string[] => [...new Set(help.match(/--[a-z][a-z-]*[a-z]/g) ?? [])];

const mentions = (text: string, word: string) => new RegExp(`(^|[^A-Za-z0-9_-])${word.replace(/[$]/g, '\\$&')}(?![A-Za-z0-9_-])`, 'm').test(text);

/** Environment variables a source tree reads (`process.env.X`, `env.X`, `agentEnv.X`; not ones it sets for a child). */
function envVariables(...dirs: string[]): string[] {
  const names = new Set<string>();
  for (const dir of dirs) {
    // Recursive: src/cli is layered in folders (docs/architecture.md).
    for (const file of readdirSync(join(ROOT, dir), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'))) {
      for (const [, name] of readFileSync(join(ROOT, dir, file), 'utf8').matchAll(/[eE]nv\.([A-Z][A-Z0-9_]+)(?![A-Z0-9_]|\s*=[^=])/g))
        names.add(name!);
    }
  }
  return [...names].sort();
}

/** The text of one section (from its heading to the next one). */
function section(text: string, heading: string): string {
  const start = text.indexOf(`\n${heading}\n`);
  if (start < 0) throw new Error(`no ${heading} section`);
  const rest = text.slice(start + heading.length + 2);
  return rest.slice(0, rest.search(/\n[A-Z][A-Z ]+\n/) + 1 || undefined);
}

withGroff('both pages render without a warning (groff -ww)', (t) => {
  for (const page of Object.values(PAGES)) {
    const r = spawnSync('groff', ['-ww', '-z', '-man', page], { encoding: 'utf8' });
    t.is(r.status, 0, page);
    t.is(r.stderr, '', page);
  }
});

withGroff('every long option of distrun and its subcommands is in distrun.1', async (t) => {
  const page = render(PAGES.distrun);
  const helps = [
    [],
    ['hosts'],
    ['ping'],
    ['copy'],
    ['fetch'],
    ['runs'],
    ['rerun'],
    ['certs'],
    ...['init', 'agent', 'client', 'revoke', 'crl', 'list', 'renew'].map((sub) => ['certs', sub]),
  ];
  let checked = 0;
  for (const words of helps) {
    const help = await distrun([...words, '--help']);
    t.is(help.code, 0, help.stderr);
    for (const option of longOptions(help.stdout.toString())) {
      t.true(mentions(page, option), `distrun ${words.join(' ')} ${option} is not in distrun.1`);
      checked += 1;
    }
  }
  t.true(checked > 40);
});

withGroff('every long option of distrunner-agent is in distrunner-agent.8', async (t) => {
  const page = render(PAGES.agent);
  const help = await run(AGENT, ['--help']);
  t.is(help.code, 0, help.stderr);
  const options = longOptions(help.stdout.toString());
  t.true(options.includes('--command-cgroups') && options.includes('--format-log') && options.includes('--check-config'));
  for (const option of options) t.true(mentions(page, option), `${option} is not in distrunner-agent.8`);
});

withGroff('every exit code is in the EXIT STATUS sections', (t) => {
  const exitStatus = section(render(PAGES.distrun), 'EXIT STATUS');
  for (const [name, code] of Object.entries(ExitCode)) {
    t.regex(exitStatus, new RegExp(`^ +${code}\\b`, 'm'), `${name} (${code}) is not in distrun.1`);
  }
  const agentStatus = section(render(PAGES.agent), 'EXIT STATUS');
  for (const code of [0, 1, EXIT_CONFIG_ERROR]) t.regex(agentStatus, new RegExp(`^ +${code}\\b`, 'm'));
});

withGroff('every environment variable the code reads is in ENVIRONMENT', (t) => {
  const cliVariables = envVariables('src/cli', 'src/pki');
  t.true(cliVariables.includes('DISTRUN_PKI'));
  const cliEnvironment = section(render(PAGES.distrun), 'ENVIRONMENT');
  for (const name of cliVariables) t.true(mentions(cliEnvironment, name), `${name} is not in distrun.1`);
  const agentVariables = envVariables('src/agent');
  t.true(agentVariables.includes('JOURNAL_STREAM') && agentVariables.includes('NOTIFY_SOCKET'));
  const agentEnvironment = section(render(PAGES.agent), 'ENVIRONMENT');
  for (const name of agentVariables) t.true(mentions(agentEnvironment, name), `${name} is not in distrunner-agent.8`);
});

test('npm installs the pages (package.json man and files); they name the package version', (t) => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { man: string[]; files: string[]; version: string };
  t.deepEqual(pkg.man, ['./man/distrun.1', './man/distrunner-agent.8']);
  t.true(pkg.files.includes('man'));
  for (const page of Object.values(PAGES))
    t.regex(readFileSync(page, 'utf8'), new RegExp(`^\\.TH .* "DistRunner ${pkg.version.replace(/\./g, '\\.')}" `, 'm'), page);
});
