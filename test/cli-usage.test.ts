// The command line's usage errors, `distrun help`, and `--` handing everything after it
// to the hosts, subcommand names included.
import test from 'ava';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AGENT, cleanupAll, distrun, makePki, run, startAgent, tempDir, type Pki, type RunningAgent } from './helpers/fleet.js';

test.after.always(cleanupAll);

const optionErrors: Array<[string[], string, string]> = [
  [['--bogus', 'true'], "distrun: unknown option '--bogus'", 'distrun'],
  [
    ['-H', 'h1', '--fanout', 'abc', 'true'],
    "distrun: option '-f, --fanout <n>' argument 'abc' is invalid. must be a whole number of at least 1",
    'distrun',
  ],
  [
    ['-H', 'h1', '--timeout', '-1', 'true'],
    "distrun: option '--timeout <sec>' argument '-1' is invalid. must be a number of seconds above 0",
    'distrun',
  ],
  [['-H', 'h1', '--jsn', 'true'], "distrun: unknown option '--jsn' (did you mean --json?)", 'distrun'],
  [['-g'], "distrun: option '-g, --group <expr>' argument missing", 'distrun'],
  [['rerun', '--bogus'], "distrun: unknown option '--bogus'", 'distrun rerun'],
  [['runs', '-n', 'abc'], "distrun: option '-n, --limit <n>' argument 'abc' is invalid. must be a whole number of at least 1", 'distrun runs'],
  [
    ['ping', '-H', 'h1', '--connect-timeout', 'x'],
    "distrun: option '--connect-timeout <sec>' argument 'x' is invalid. must be a number of seconds above 0",
    'distrun ping',
  ],
  [['hosts', '--explain', '--bogus'], "distrun: unknown option '--bogus'", 'distrun hosts'],
  [['certs', 'agent'], "distrun: missing required argument 'name'", 'distrun certs agent'],
  [
    ['certs', 'agent', 'a1', '--days', '0'],
    "distrun: option '--days <n>' argument '0' is invalid. must be a whole number from 1 to 3650",
    'distrun certs agent',
  ],
];

for (const [args, error, command] of optionErrors) {
  test(`option error: distrun ${args.join(' ')} prints the error and one line pointing to help, exit 255`, async (t) => {
    // No PKI and no inventory anywhere: the option is checked first.
    const r = await distrun(args, { env: { DISTRUN_PKI: join(tempDir(), 'no-pki'), DISTRUN_INVENTORY: '' } });
    t.is(r.code, 255);
    t.is(r.stdout.toString(), '');
    t.is(r.stderr, `${error}\nTry '${command} --help' for more information.\n`);
  });
}

test('distrunner-agent: an option error is the error and one line pointing to help, too', async (t) => {
  const r = await run(AGENT, ['--port', 'x']);
  t.is(r.code, 64); // EX_USAGE: systemd does not restart on it (RestartPreventExitStatus)
  t.is(
    r.stderr,
    "distrunner-agent: option '--port <port>' argument 'x' is invalid. must be an integer from 0 to 65535\n" +
      "Try 'distrunner-agent --help' for more information.\n",
  );
});

test('a bad option value found by distrun itself also points to help; a problem that help cannot solve does not', async (t) => {
  const cwd = await distrun(['-H', 'h1', '--cwd', 'relative', 'true']);
  t.is(cwd.code, 255);
  t.is(cwd.stderr, "distrun: --cwd needs an absolute path, got 'relative'\nTry 'distrun --help' for more information.\n");
  const batch = await distrun(['-H', 'h1', '--batch', '0%', 'true']);
  t.is(
    batch.stderr,
    "distrun: --batch takes a whole number N >= 1 or a percentage N% (1-100), got '0%'\nTry 'distrun --help' for more information.\n",
  );
  const none = await distrun(['-H', 'h1']);
  t.is(none.stderr, "distrun: no command given: distrun [options] [--] COMMAND [ARGS...]\nTry 'distrun --help' for more information.\n");
  // stdin is a pipe here: the option is right, the situation is not.
  const tty = await distrun(['-H', 'h1', '--tty', 'true']);
  t.is(tty.code, 255);
  t.is(tty.stderr, 'distrun: --tty needs a terminal: run it from an interactive shell (stdin and stdout must be terminals)\n');
});

test('distrun help and distrun help SUBCOMMAND show help, exit 0', async (t) => {
  const root = await distrun(['help']);
  t.is(root.code, 0, root.stderr);
  t.regex(root.stdout.toString(), /^Usage: distrun \[options\] \[--\] COMMAND/);
  t.regex(root.stdout.toString(), /\n {2}help \[subcommand\.\.\.\] /);
  const rerun = await distrun(['help', 'rerun']);
  t.is(rerun.code, 0, rerun.stderr);
  t.regex(rerun.stdout.toString(), /^Usage: distrun rerun \[options\] \[run\]/);
  t.regex(rerun.stdout.toString(), /--unreachable/);
  const certs = await distrun(['certs', 'help', 'agent']);
  t.regex(certs.stdout.toString(), /^Usage: distrun certs agent /);
  const nested = await distrun(['help', 'certs', 'agent']);
  t.regex(nested.stdout.toString(), /^Usage: distrun certs agent /);
  const unknown = await distrun(['help', 'bogus']);
  t.is(unknown.code, 255);
  t.is(unknown.stderr, "distrun: no such subcommand: 'distrun bogus'\nTry 'distrun help --help' for more information.\n");
});

test('help texts say what the options do', async (t) => {
  const root = (await distrun(['--help'])).stdout.toString();
  t.regex(root, /-g, --group <expr> +select hosts by group or target expression/);
  const hosts = (await distrun(['hosts', '--help'])).stdout.toString();
  t.notRegex(hosts, /run on/);
  const rerun = (await distrun(['rerun', '--help'])).stdout.toString();
  t.regex(rerun, /--json +JSON Lines events/);
  const runs = (await distrun(['runs', '--help'])).stdout.toString();
  t.regex(runs, /\(default: 20\)/);
  const ping = (await distrun(['ping', '--help'])).stdout.toString();
  t.regex(ping, /-q, --quiet/);
});

test.serial('after --, help and subcommand names are the remote command', async (t) => {
  // Programs named like distrun's subcommands, found first on the agent's PATH: only a
  // command that really ran on the host prints "remote NAME".
  const bin = tempDir();
  const names = ['help', 'hosts', 'ping', 'runs', 'rerun', 'certs'];
  for (const name of names) {
    writeFileSync(join(bin, name), `#!/bin/sh\necho "remote ${name} $*"\n`);
    chmodSync(join(bin, name), 0o755);
  }
  const pki: Pki = await makePki(['agent1']);
  const agent: RunningAgent = await startAgent(pki, 'agent1', { env: { PATH: `${bin}:${process.env.PATH}` } });
  const base = ['-H', `127.0.0.1:${agent.port}`, '--pki', pki.dir, '-N'];
  for (const name of names) {
    const r = await distrun([...base, '--', name, '-x', '--help']);
    t.is(r.code, 0, `${name}: ${r.stderr}`);
    t.is(r.stdout.toString(), `remote ${name} -x --help\n`);
  }
  // A second `--` after the first is part of the remote command.
  const dashes = await distrun(['-H', 'h1', '-n', '--', '--', 'hosts']);
  t.regex(dashes.stdout.toString(), /^argv: \["--","hosts"\]\n/);
  // Without `--`, a subcommand's name is the subcommand.
  const local = await distrun(['hosts', '-H', 'a,b']);
  t.is(local.stdout.toString(), 'a  a:6789\nb  b:6789\n');
});
