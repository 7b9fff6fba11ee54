// `distrun --tty`: a real terminal on the remote host. distrun runs inside tmux (a real
// local terminal that the test can type into, resize and read), against real agents.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { authorize } from '../src/agent/policy.js';
import { applyOption, decodeWindow, defaultSessionOptions, encodeCommand, encodeOptions, encodeVersionOffer } from '../src/protocol/messages.js';
import {
  DISTRUN,
  cleanupAll,
  distrun,
  failureIn,
  makePki,
  processesMatching,
  RUN_TOKEN,
  rawExchange,
  startAgent,
  tempDir,
  testCacheHome,
  waitFor,
  type Pki,
  type RunningAgent,
} from './helpers/fleet.js';

const hasTmux = spawnSync('sh', ['-c', 'command -v tmux']).status === 0;
const tmuxTest = hasTmux ? test.serial : test.serial.skip;
if (!hasTmux) console.log('tty: terminal tests skipped: tmux is missing (apt-get install tmux)');

let pki: Pki;
let agents: RunningAgent[];
let dir: string;
// tmux's socket in a directory of the test's own (tmux leaves it behind after kill-server).
const server = join(tempDir('distrun-tty-'), 'tmux.sock');

test.before(async () => {
  pki = await makePki(['agent1', 'agent2']);
  agents = await Promise.all(['agent1', 'agent2'].map((name) => startAgent(pki, name)));
  dir = tempDir();
});

test.after.always(async () => {
  spawnSync('tmux', ['-S', server, 'kill-server']);
  await cleanupAll();
});

const tmux = (...args: string[]) => spawnSync('tmux', ['-S', server, ...args], { encoding: 'utf8' });
const screen = (): string => tmux('capture-pane', '-p', '-t', 't').stdout;
const type = (...keys: string[]) => tmux('send-keys', '-t', 't', ...keys);
async function shows(pattern: RegExp): Promise<boolean> {
  return waitFor(() => pattern.test(screen()), 10_000, 100);
}

/** A shell in a fresh 100x30 tmux window, where distrun runs as a user would type it. */
async function terminalWith(distrunArgs: string): Promise<void> {
  tmux('kill-session', '-t', 't');
  const rc = join(dir, 'rc');
  writeFileSync(rc, `PS1='local$ '\nexport XDG_CACHE_HOME=${testCacheHome()}\n`);
  tmux('new-session', '-d', '-s', 't', '-x', '100', '-y', '30', `bash --rcfile ${rc} -i`);
  if (!(await shows(/local\$\s*$/m))) throw new Error(`the local shell did not start: ${screen()}`);
  // The local terminal's modes before and after, to compare.
  type(`stty -g > ${dir}/before; node ${DISTRUN} --pki ${pki.dir} ${distrunArgs}; echo "distrun-exit=$?"; stty -g > ${dir}/after`, 'Enter');
}
const modesRestored = () => readFileSync(join(dir, 'before'), 'utf8') === readFileSync(join(dir, 'after'), 'utf8');
const at = (agent: RunningAgent) => `-H 127.0.0.1:${agent.port}`;

tmuxTest('bash in a terminal: commands, window size and resize, Ctrl-C and Ctrl-Z go to the remote program, exit code, modes restored', async (t) => {
  await terminalWith(`${at(agents[0]!)} --tty bash --norc --noprofile`);
  t.true(await shows(/bash-[\d.]+#\s*$/m), screen());
  type('stty size; tty; echo "TERM=$TERM"', 'Enter');
  t.true(await shows(/^30 100$/m), screen());
  t.regex(screen(), /^\/dev\/pts\/\d+$/m);
  t.regex(screen(), /^TERM=\S+$/m);
  tmux('resize-window', '-t', 't', '-x', '120', '-y', '40');
  type('stty size', 'Enter');
  t.true(await shows(/^40 120$/m), screen());
  // Ctrl-C interrupts the remote sleep, not distrun.
  type('sleep 100', 'Enter');
  await new Promise((r) => setTimeout(r, 300));
  type('C-c');
  type('echo still-here', 'Enter');
  t.true(await shows(/^still-here$/m), screen());
  // Ctrl-Z stops it on the remote side (job control of the remote bash).
  type('set -m; sleep 101', 'Enter');
  await new Promise((r) => setTimeout(r, 300));
  type('C-z');
  t.true(await shows(/Stopped\s+sleep 101/), screen());
  type('fg', 'Enter');
  await new Promise((r) => setTimeout(r, 300));
  type('C-c');
  type('exit 7', 'Enter');
  t.true(await shows(/^distrun-exit=7$/m), screen());
  t.true(await waitFor(modesRestored), 'the local terminal is back in its modes');
});

tmuxTest('Ctrl-D ends the remote shell; top -b -n 1 and full-screen top work', async (t) => {
  await terminalWith(`${at(agents[0]!)} --tty bash --norc --noprofile`);
  t.true(await shows(/bash-[\d.]+#\s*$/m), screen());
  type('top -b -n 1 | head -3', 'Enter');
  t.true(await shows(/load average/), screen());
  type('top -d 1', 'Enter');
  // Full screen: top's header at the top line, its column titles below.
  t.true(await shows(/^top - .*load average[\s\S]*PID\s+USER/m), screen());
  type('q');
  t.true(await shows(/bash-[\d.]+#\s*$/m), screen());
  type('C-d');
  t.true(await shows(/^distrun-exit=0$/m), screen());
  t.true(await waitFor(modesRestored));
});

tmuxTest('the connection killed mid-session: distrun exits 255 and the terminal modes are restored', async (t) => {
  const victim = await startAgent(pki, 'agent1');
  await terminalWith(`${at(victim)} --tty bash --norc --noprofile`);
  t.true(await shows(/bash-[\d.]+#\s*$/m), screen());
  victim.process.kill('SIGKILL');
  t.true(await shows(/^distrun-exit=255$/m), screen());
  t.true(await waitFor(modesRestored));
  t.regex(screen(), /connection (closed before the command finished|reset by the agent)/);
});

tmuxTest('distrun killed with SIGTERM mid-session: the terminal modes are restored and it dies of that signal', async (t) => {
  // (env puts this run's token on distrun's command line, to find it by.)
  await terminalWith(`${at(agents[1]!)} --tty env DISTRUN_TEST_RUN=${RUN_TOKEN} bash --norc --noprofile`);
  t.true(await shows(/bash-[\d.]+#\s*$/m), screen());
  const [line] = processesMatching(`127.0.0.1:${agents[1]!.port} --tty env DISTRUN_TEST_RUN=${RUN_TOKEN} bash`);
  t.truthy(line, 'distrun is running');
  process.kill(Number(line!.trim().split(/\s+/)[0]), 'SIGTERM');
  t.true(await shows(/^distrun-exit=143$/m), screen());
  t.true(await waitFor(modesRestored));
});

tmuxTest('several hosts: refused without --broadcast; with it every host gets the keys and output is prefixed', async (t) => {
  const inventory = join(dir, 'hosts.yaml');
  writeFileSync(inventory, `hosts:\n${agents.map((a, i) => `  h${i + 1}: {address: 127.0.0.1, port: ${a.port}}\n`).join('')}`);
  const both = `-i ${inventory} -H h1,h2`;
  await terminalWith(`${both} --tty sh -c 'read line; echo "got $line"'`);
  t.true(await shows(/--tty on 2 hosts would send every key you type to all of them; add --broadcast/), screen());
  t.true(await shows(/^distrun-exit=255$/m));
  // (The pause before exiting: node-pty drops output still unread 200 ms after the program
  // exits, which a loaded machine can miss; docs/operations.md.)
  await terminalWith(`${both} --tty --broadcast sh -c 'read line; echo "got $line"; sleep 0.5'`);
  await new Promise((r) => setTimeout(r, 500));
  type('hello', 'Enter');
  t.true(await shows(/^distrun-exit=0$/m), screen());
  const lines = screen().split('\n');
  t.true(lines.includes('h1: got hello') && lines.includes('h2: got hello'), screen());
});

test('--tty without a local terminal is an error with a clear message', async (t) => {
  const r = await distrun(['-H', `127.0.0.1:${agents[0]!.port}`, '--pki', pki.dir, '--tty', 'true']);
  t.is(r.code, 255);
  t.is(r.stderr, 'distrun: --tty needs a terminal: run it from an interactive shell (stdin and stdout must be terminals)\n');
  const json = await distrun(['-H', `127.0.0.1:${agents[0]!.port}`, '--pki', pki.dir, '--tty', '--json', 'true']);
  t.is(json.code, 255);
  t.is(json.stderr, "distrun: --tty cannot go with --json\nTry 'distrun --help' for more information.\n");
});

test('policy: a terminal needs a rule that says pty: true', (t) => {
  const rules = [{ clients: ['ops'], commands: ['bash'], shell: false }];
  t.like(authorize(rules, 'ops', ['bash'], { shell: false, envNames: [], pty: true }), {
    allowed: false,
    reason: 'a terminal (--tty) is not allowed for this client and command',
  });
  t.like(authorize([{ ...rules[0]!, pty: true }], 'ops', ['bash'], { shell: false, envNames: [], pty: true }), { allowed: true });
  t.like(authorize(rules, 'ops', ['bash'], { shell: false, envNames: [] }), { allowed: true });
});

test('an agent whose policy forbids terminals refuses --tty (E_DENIED) and still runs the command without it', async (t) => {
  const strict = await startAgent(pki, 'agent1', { config: { policy: [{ clients: ['*'], commands: ['true', 'sh'] }] } });
  const r = await distrun(['-H', `127.0.0.1:${strict.port}`, '--pki', pki.dir, 'true']);
  t.is(r.code, 0, r.stderr);
  // No local terminal is needed to check the agent's answer: speak the protocol directly.
  const options = { ...defaultSessionOptions(), stdin: true, pty: { cols: 80, rows: 24 }, term: 'xterm' };
  const frames = await rawExchange(strict.port, pki.dir, [
    encodeVersionOffer({ versions: [3], software: 'test' }),
    ...encodeOptions(options),
    encodeCommand(['sh']),
  ]);
  t.deepEqual(failureIn(frames), { code: 'E_DENIED', reason: 'a terminal (--tty) is not allowed for this client and command' });
  const denied = () => strict.logs.find((l) => l.msg === 'audit' && (l.audit as { event: string }).event === 'denied');
  t.true(await waitFor(() => denied() !== undefined));
  t.like(denied()!.audit, { event: 'denied', argv: ['sh'], pty: true });
});

test('protocol: pty and term options and WIN frames are checked', (t) => {
  const options = defaultSessionOptions();
  applyOption(options, Buffer.from('pty=132x43'));
  applyOption(options, Buffer.from('term=xterm-256color'));
  t.deepEqual([options.pty, options.term], [{ cols: 132, rows: 43 }, 'xterm-256color']);
  for (const bad of ['pty=0x24', 'pty=80', 'pty=80x24x1', 'pty=99999x24', 'term=', 'term=a b', 'term=$(reboot)']) {
    t.throws(() => applyOption(defaultSessionOptions(), Buffer.from(bad)), { code: 'E_PROTOCOL' }, bad);
  }
  t.deepEqual(decodeWindow(Buffer.from('120x40')), { cols: 120, rows: 40 });
  t.throws(() => decodeWindow(Buffer.from('120x')), { code: 'E_PROTOCOL' });
});
