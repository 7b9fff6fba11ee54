// The run's plan (commands/run.ts planRun) as a pure decision: words and flags in, the argv,
// session options, schedule, input, screen and record out, or the usage error a user
// meets first. No inventory, no agent; the same options end to end are in run.test.ts,
// execution.test.ts and runs.test.ts.
import test from 'ava';
import { planRun, type PlanSources, type RunOptions } from '../src/cli/commands/run.js';
import { scriptArgv } from '../src/cli/execution/script.js';
import type { Target } from '../src/cli/targeting/model.js';
import { target } from './helpers/fake-session.js';

const hosts = (n: number): Target[] => Array.from({ length: n }, (_, i) => target(`web${i + 1}`));

/** The flags as commander gives them with no option given. */
const flags = (given: Partial<RunOptions> = {}): RunOptions => ({
  fanout: 64,
  stderr: true,
  connectTimeout: 10,
  timeout: undefined,
  pki: undefined,
  tokenFile: undefined,
  prefix: true,
  ...given,
});

function sources(targets: Target[] = hosts(3), scripts: Record<string, string> = {}) {
  const asked: string[] = [];
  const s: PlanSources = {
    resolveTargets: () => {
      asked.push('targets');
      return targets;
    },
    readScript: (file) => {
      asked.push(`script ${file}`);
      if (!(file in scripts)) throw new Error(`no script ${file}`);
      return Buffer.from(scripts[file]!);
    },
  };
  return { s, asked };
}

const plan = (words: string[], given: Partial<RunOptions> = {}, from = sources()) => planRun(words, flags(given), from.s);

test('a plain run: the words are the argv, no stdin, every host in flight, prefixed lines, recorded as run', (t) => {
  const p = plan(['printf', '%s', 'a b', '']);
  t.deepEqual(p.argv, ['printf', '%s', 'a b', '']);
  t.deepEqual(p.shownArgv, p.argv);
  t.like(p.options, { stdin: false, stderr: true, shell: false, timeoutMs: 0, env: {} });
  t.deepEqual(p.schedule, { fanout: 3, batchSize: Infinity, batchWaitMs: 0, maxFail: Infinity });
  t.is(p.input, 'none');
  t.deepEqual(p.screen, { format: 'lines', prefix: true, neutralize: true });
  t.deepEqual(p.recorded, { command: ['printf', '%s', 'a b', ''], stdin: false, parent: undefined, shell: false, stderr: true, timeout: undefined });
});

test('--shell joins the words into one script, shown as /bin/sh -c runs it', (t) => {
  const p = plan(['echo', '$HOME', '|', 'wc'], { shell: true });
  t.deepEqual(p.argv, ['echo $HOME | wc']);
  t.deepEqual(p.shownArgv, ['/bin/sh', '-c', 'echo $HOME | wc']);
  t.true(p.options.shell);
  t.deepEqual(p.recorded.command, ['echo', '$HOME', '|', 'wc'], 'the record keeps the words');
});

test('--script: the wrapper runs with the words as arguments, fed the script; the record names the script, not the wrapper', (t) => {
  const from = sources(hosts(2), { '/srv/fix.sh': '#!/bin/bash -e\necho fixed\n' });
  const p = plan(['--force', 'x y'], { script: '/srv/fix.sh' }, from);
  t.deepEqual(p.argv, scriptArgv(Buffer.from('#!/bin/bash -e\necho fixed\n'), ['--force', 'x y']));
  t.deepEqual(p.argv.slice(-4), ['/bin/bash', '-e', '--force', 'x y']);
  t.is(p.input, 'script');
  t.is(p.script?.toString(), '#!/bin/bash -e\necho fixed\n');
  t.true(p.options.stdin, "the script travels as the command's stdin");
  t.like(p.recorded, { command: ['--force', 'x y'], script: '/srv/fix.sh', stdin: false });
  const bare = plan([], { script: '/srv/fix.sh' }, from);
  t.deepEqual(bare.argv.slice(-2), ['/bin/bash', '-e'], 'a script needs no arguments');
});

test('what a run cannot be is refused before the hosts are resolved or the script is read, in the order a user meets it', (t) => {
  const refusals: [string[], Partial<RunOptions>, RegExp][] = [
    [['cat'], { stdin: true, inventory: ['-'] }, /^-i - reads the inventory from stdin: it cannot go with -t, --tty or --script/],
    [['x'], { script: 'f.sh', stdin: true }, /^--script sends the script over stdin: it cannot go with -t, --tty or --shell$/],
    [['x'], { script: 'f.sh', shell: true }, /^--script sends the script over stdin/],
    [[], {}, /^no command given: distrun \[options\] \[--\] COMMAND \[ARGS\.\.\.\]$/],
    [['pwd'], { cwd: 'relative/dir' }, /^--cwd needs an absolute path, got 'relative\/dir'$/],
  ];
  for (const [words, given, message] of refusals) {
    const from = sources();
    const err = t.throws(() => plan(words, given, from));
    t.regex(err.message, message);
    t.deepEqual(from.asked, [], `${JSON.stringify(given)}: nothing resolved or read`);
  }
});

test('a rerun brings its hosts: -i - may go with stdin then, and the selection is not resolved', (t) => {
  const from = sources();
  const chosen = hosts(1);
  const p = planRun(['cat'], flags({ stdin: true, inventory: ['-'], rerunOf: 'r-1' }), { ...from.s, chosenTargets: chosen });
  t.is(p.targets, chosen);
  t.deepEqual(from.asked, []);
  t.is(p.input, 'stdin');
  t.like(p.recorded, { stdin: true, parent: 'r-1' });
});

test('values that need the hosts: --env, --batch and --max-fail as counts or percentages of them', (t) => {
  const p = plan(
    ['env'],
    { env: ['A=1', 'B=x=y', 'EMPTY='], batch: '50%', maxFail: '2', batchWait: 1.5, timeout: 30, fanout: 2 },
    sources(hosts(10)),
  );
  t.deepEqual(p.options.env, { A: '1', B: 'x=y', EMPTY: '' });
  t.deepEqual(p.schedule, { fanout: 2, batchSize: 5, batchWaitMs: 1500, maxFail: 2 });
  t.is(p.options.timeoutMs, 30_000);
  for (const env of ['NOEQUALS', '=x', '1A=x', 'A-B=x']) {
    t.throws(() => plan(['env'], { env: [env] }), { message: `--env takes NAME=value with a valid variable name, got '${env}'` });
  }
  t.throws(() => plan(['x'], { batch: 'many' }), { message: /--batch/ });
});

test('--tty: refused with --json or --gather and on several hosts without --broadcast; its keys are the input; one host unprefixed', (t) => {
  t.throws(() => plan(['top'], { tty: true, json: true }, sources(hosts(1))), { message: '--tty cannot go with --json' });
  t.throws(() => plan(['top'], { tty: true, gather: true }, sources(hosts(1))), { message: '--tty cannot go with --gather' });
  t.throws(() => plan(['top'], { tty: true }, sources(hosts(2))), {
    message: /^--tty on 2 hosts would send every key you type to all of them; add --broadcast/,
  });
  const one = plan(['top'], { tty: true }, sources(hosts(1)));
  t.is(one.input, 'terminal');
  t.true(one.options.stdin);
  t.false(one.screen.prefix, "one host's terminal is shown as it is");
  const several = plan(['bash'], { tty: true, broadcast: true }, sources(hosts(2)));
  t.true(several.screen.prefix);
  t.is(plan(['top'], { tty: true, dryRun: true }, sources(hosts(5))).input, 'none', '--dry-run opens no terminal');
});

test('the screen: --json, -b, -N and --raw-control-chars', (t) => {
  t.is(plan(['x'], { json: true }).screen.format, 'json');
  t.is(plan(['x'], { gather: true }).screen.format, 'gather');
  t.false(plan(['x'], { prefix: false }).screen.prefix);
  t.false(plan(['x'], { rawControlChars: true }).screen.neutralize);
  t.false(plan(['x'], { stderr: false }).options.stderr);
});
