// End to end: real agents on loopback, the real distrun binary, real commands.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { FrameDecoder } from '../src/protocol/frame-decoder.js';
import { encodeCommand, encodeVersionOffer } from '../src/protocol/messages.js';
import {
  listedHosts,
  DISTRUN,
  cleanupAll,
  trioFleet,
  connectRaw,
  distrun,
  processesMatching,
  RUN_TOKEN,
  residentBytes,
  spawnDistrun,
  startAgent,
  tempDir,
  distrunEnv,
  waitFor,
  type Pki,
  type RunningAgent,
} from './helpers/fleet.js';
import { jsonLines } from './helpers/json-lines.js';

let pki: Pki;
let agents: RunningAgent[];
let inventory: string;
let on: (group: string, ...args: string[]) => string[];

test.before(async () => {
  ({ pki, agents, inventory, on } = await trioFleet());
});

test.after.always(cleanupAll);

test('argv arrives exactly: spaces, quotes, empty arguments, newlines, UTF-8', async (t) => {
  const args = ['a b', '', "it's", 'say "hi"', 'line1\nline2', 'ünïcødé 🚀', '  ', '$HOME', '*'];
  const r = await distrun(on('one', '-N', '--', 'printf', '<%s>', ...args));
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout.toString(), args.map((a) => `<${a}>`).join(''));
});

test('stdout and stderr stay separate, each line prefixed with its host', async (t) => {
  const r = await distrun(on('one', 'sh', '-c', 'echo to-out; echo to-err >&2'));
  t.is(r.code, 0);
  t.is(r.stdout.toString(), 'h1: to-out\n');
  t.is(r.stderr, 'h1: to-err\n');
  const quiet = await distrun(on('one', '--no-stderr', 'sh', '-c', 'echo to-out; echo to-err >&2'));
  t.is(quiet.stdout.toString(), 'h1: to-out\n');
  t.is(quiet.stderr, '');
});

test('binary output is byte-exact (several MB of random bytes, sha256)', async (t) => {
  const file = join(tempDir(), 'random.bin');
  const data = randomBytes(6 * 1024 * 1024 + 7);
  writeFileSync(file, data);
  const r = await distrun(on('one', '-N', 'cat', file));
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout.length, data.length);
  t.is(createHash('sha256').update(r.stdout).digest('hex'), createHash('sha256').update(data).digest('hex'));
});

test('--json: JSON Lines events, byte-exact output, a final summary', async (t) => {
  const file = join(tempDir(), 'mixed.bin');
  // Text with multi-byte UTF-8 and random bytes: chunks come as text or base64, bytes stay exact.
  const data = Buffer.concat([Buffer.from('plain ascii line\n'.repeat(20_000)), Buffer.from('héllo wörld ✓\n'), randomBytes(200_000)]);
  writeFileSync(file, data);
  const r = await distrun(on('trio', '--json', 'sh', '-c', `cat ${file}; echo err >&2; exit 3`));
  t.is(r.code, 3, r.stderr);
  const events = jsonLines(r.stdout);
  for (const event of events) {
    t.is(event.v, 1);
    t.truthy(Date.parse(event.time));
    t.true(['start', 'stdout', 'stderr', 'exit', 'summary'].includes(event.type), event.type);
  }
  for (const host of ['h1', 'h2', 'h3']) {
    const mine = events.filter((e) => e.host === host);
    t.is(mine[0]!.type, 'start');
    t.like(mine[0], { address: '127.0.0.1' });
    const out = Buffer.concat(mine.filter((e) => e.type === 'stdout').map((e) => Buffer.from(e.data, e.encoding === 'base64' ? 'base64' : 'utf8')));
    t.true(out.equals(data), `${host} stdout is byte-exact`);
    t.true(mine.some((e) => e.type === 'stdout' && e.encoding === 'utf8'));
    t.true(mine.some((e) => e.type === 'stdout' && e.encoding === 'base64'));
    t.deepEqual(
      mine.filter((e) => e.type === 'stderr').map((e) => e.data),
      ['err\n'],
    );
    t.like(mine.at(-1), { type: 'exit', status: 'failed', exitCode: 3, code: 3, signal: null });
  }
  t.like(events.at(-1), { type: 'summary', hosts: 3, ok: 0, failed: 3, exitCode: 3 });
  const down = await distrun(['-i', inventory, '--pki', pki.dir, '-H', '127.0.0.1:1', '--json', 'true']);
  const downEvents = jsonLines(down.stdout);
  t.like(
    downEvents.find((e) => e.type === 'unreachable'),
    { host: '127.0.0.1', status: 'unreachable', code: 'E_CONNECT', exitCode: 255 },
  );
  t.like(downEvents.at(-1), { type: 'summary', unreachable: 1, exitCode: 255 });
});

test('the exit code is the largest remote exit code', async (t) => {
  // mkdir is atomic: the three hosts exit 1, 2 and 5 in some order.
  const slots = tempDir();
  const script = `if mkdir ${slots}/a 2>/dev/null; then exit 1; elif mkdir ${slots}/b 2>/dev/null; then exit 2; else exit 5; fi`;
  const r = await distrun(on('trio', 'sh', '-c', script));
  t.is(r.code, 5);
  t.regex(r.stderr, /^distrun: 3 hosts: 3 failed$/m);
  t.regex(r.stderr, /^  exit code 5: h\d$/m);
  t.regex(r.stderr, /^  exit code [12]: h\d$/m);
  const ok = await distrun(on('trio', 'true'));
  t.is(ok.code, 0);
  t.is(ok.stderr, '');
});

test('--gather prints identical outputs once under folded host names, largest group first', async (t) => {
  const same = await distrun(on('trio', '-b', 'echo', 'same'));
  t.is(same.code, 0, same.stderr);
  t.is(same.stdout.toString(), '---------------\nh[1-3] (3)\n---------------\nsame\n');
  // Exactly one host (the first to create the directory) differs.
  const slots = tempDir();
  const r = await distrun(on('trio', '-b', 'sh', '-c', `if mkdir ${slots}/first 2>/dev/null; then echo odd; exit 4; else echo common; fi`));
  t.is(r.code, 4);
  const blocks = r.stdout
    .toString()
    .split(/^-{15}\n/m)
    .filter(Boolean);
  t.is(blocks.length, 4, r.stdout.toString());
  t.regex(blocks[0]!, /^h\[\d[-,]\d\] \(2\)\n$/);
  t.is(blocks[1], 'common\n');
  t.regex(blocks[2]!, /^h\d \(1\) exit code 4\n$/);
  t.is(blocks[3], 'odd\n');
  t.regex(r.stderr, /^  exit code 4: h\d$/m);
});

test('--outdir writes byte-exact HOST.out and HOST.err, and HOST.rc', async (t) => {
  const dir = join(tempDir(), 'out');
  const file = join(tempDir(), 'data.bin');
  const data = randomBytes(300_000);
  writeFileSync(file, data);
  const r = await distrun(on('trio', '--outdir', dir, 'sh', '-c', `cat ${file}; printf 'no newline' >&2; exit 2`));
  t.is(r.code, 2);
  for (const host of ['h1', 'h2', 'h3']) {
    t.true(readFileSync(join(dir, `${host}.out`)).equals(data), `${host}.out is byte-exact`);
    t.is(readFileSync(join(dir, `${host}.err`), 'utf8'), 'no newline');
    t.is(readFileSync(join(dir, `${host}.rc`), 'utf8'), '2\n');
  }
});

test('--cwd and --env reach the command; a missing directory is a clear failure', async (t) => {
  const r = await distrun(on('one', '--cwd', '/tmp', '--env', 'A=1', '--env', 'B=x y=z', 'sh', '-c', 'echo "$(pwd)|$A|$B"'));
  t.is(r.stdout.toString(), 'h1: /tmp|1|x y=z\n', r.stderr);
  const missing = await distrun(on('one', '--cwd', '/nonexistent-dir', 'pwd'));
  t.is(missing.code, 126);
  t.regex(missing.stderr, /cannot use working directory \/nonexistent-dir: it does not exist, is not a directory, or \S+ may not enter it/);
  const relative = await distrun(on('one', '--cwd', 'tmp', 'pwd'));
  t.is(relative.code, 255);
  t.regex(relative.stderr, /--cwd needs an absolute path/);
  const badEnv = await distrun(on('one', '--env', '1X=2', 'true'));
  t.regex(badEnv.stderr, /--env takes NAME=value/);
});

test('colours on a terminal only, and never with NO_COLOR, TERM=dumb or FORCE_COLOR=0', async (t) => {
  // `script` gives distrun a pseudo-terminal as stdout and stderr.
  const quote = (a: string) => `'${a.replace(/'/g, `'\\''`)}'`;
  const command = [process.execPath, DISTRUN, ...on('one', 'sh', '-c', 'echo out; exit 3')].map(quote).join(' ');
  const onTty = (env: NodeJS.ProcessEnv) => spawnSync('script', ['-qec', command, '/dev/null'], { encoding: 'utf8', env: distrunEnv(env) });
  const colored = onTty({ TERM: 'xterm' });
  t.is(colored.status, 3, colored.stderr);
  t.true(colored.stdout.includes('\x1b[36mh1: \x1b[0mout'), JSON.stringify(colored.stdout));
  t.true(colored.stdout.includes('\x1b[31mexit code 3:\x1b[0m h1'), JSON.stringify(colored.stdout));
  const noColor = onTty({ NO_COLOR: '1' });
  // No colour (SGR) sequences; a progress line's erase (ESC [K) may show on a slow machine.
  t.false(/\x1b\[[0-9;]*m/.test(noColor.stdout), JSON.stringify(noColor.stdout));
  t.true(noColor.stdout.includes('h1: out'));
  // A terminal without colours says so itself (tty.WriteStream.hasColors): TERM=dumb, FORCE_COLOR=0.
  for (const env of [{ TERM: 'dumb' }, { TERM: 'xterm', FORCE_COLOR: '0' }]) {
    const plain = onTty(env);
    t.false(/\x1b\[[0-9;]*m/.test(plain.stdout), `${JSON.stringify(env)}: ${JSON.stringify(plain.stdout)}`);
    t.true(plain.stdout.includes('h1: out'));
  }
  const piped = await distrun(on('one', 'sh', '-c', 'echo out; exit 3'));
  t.false(piped.stdout.toString().includes('\x1b[') || piped.stderr.includes('\x1b['), 'no colours into a pipe');
});

test('a live progress line on a terminal, cleared before output; none with -q or into a pipe', async (t) => {
  const quote = (a: string) => `'${a.replace(/'/g, `'\\''`)}'`;
  const onTty = (extra: string[]) =>
    spawnSync(
      'script',
      ['-qec', [process.execPath, DISTRUN, ...on('trio', ...extra, 'sh', '-c', 'sleep 1; echo finished')].map(quote).join(' '), '/dev/null'],
      {
        encoding: 'utf8',
        env: distrunEnv({ NO_COLOR: '1' }),
      },
    );
  const shown = onTty([]);
  t.is(shown.status, 0, shown.stdout);
  t.regex(shown.stdout, /\[0\/3 done, 0 failed, 3 running\] slowest: h\d \d+\.\ds/);
  // Every output line starts on a cleared line, never after progress text.
  for (const line of shown.stdout.split('\n').filter((l) => l.includes('finished'))) {
    t.regex(line, /(^|\r\x1b\[K)h\d: finished\r?$/, JSON.stringify(line));
  }
  const quiet = onTty(['-q']);
  t.notRegex(quiet.stdout, /running\]/);
  const piped = await distrun(on('trio', 'sh', '-c', 'sleep 0.5'));
  t.is(piped.stderr, '');
});

test('on a terminal, a run above DISTRUN_CONFIRM_ABOVE hosts asks first unless --yes', async (t) => {
  const quote = (a: string) => `'${a.replace(/'/g, `'\\''`)}'`;
  const marker = `confirm-${Math.floor(Math.random() * 1e9)}`;
  const onTty = (extra: string[], input: string) =>
    spawnSync('script', ['-qec', [process.execPath, DISTRUN, ...on('trio', ...extra, 'echo', marker)].map(quote).join(' '), '/dev/null'], {
      encoding: 'utf8',
      input,
      env: distrunEnv({ DISTRUN_CONFIRM_ABOVE: '2', NO_COLOR: '1' }),
    });
  const declined = onTty([], 'n\n');
  t.is(declined.status, 130, declined.stdout);
  t.regex(declined.stdout, new RegExp(`run \\["echo","${marker}"\\] on 3 hosts \\(h\\[1-3\\]\\)\\? \\[y/N\\]`));
  t.regex(declined.stdout, /not confirmed; nothing was run/);
  t.false(
    agents.some((a) => a.logs.some((l) => JSON.stringify(l.argv ?? '').includes(marker))),
    'nothing ran',
  );
  const accepted = onTty([], 'y\n');
  t.is(accepted.status, 0, accepted.stdout);
  t.is(accepted.stdout.split(marker).length - 1, 3 + 1, 'three hosts answered (and the prompt named it)');
  const yes = onTty(['--yes'], '');
  t.is(yes.status, 0);
  t.notRegex(yes.stdout, /\[y\/N\]/);
  // A --script run sends the script as the commands' stdin, and still asks on the terminal first.
  const script = join(tempDir(), 'confirm.sh');
  writeFileSync(script, 'true\n');
  const scripted = onTty(['--script', script], 'n\n');
  t.is(scripted.status, 130, scripted.stdout);
  t.regex(scripted.stdout, /\[y\/N\] [^]*not confirmed; nothing was run/);
});

test('--script sends a local script and runs it with its interpreter and arguments', async (t) => {
  const dir = tempDir();
  const py = join(dir, 'hello.py');
  writeFileSync(py, '#!/usr/bin/env python3\nimport sys\nprint("py", sys.argv[1:])\nsys.exit(4)\n');
  const r = await distrun(on('trio', '--script', py, 'a b', ''));
  t.is(r.code, 4, r.stderr);
  t.deepEqual(r.stdout.toString().trim().split('\n').sort(), ["h1: py ['a b', '']", "h2: py ['a b', '']", "h3: py ['a b', '']"]);
  const sh = join(dir, 'plain.sh');
  writeFileSync(sh, 'echo "sh:$1:$#"; cat </dev/null\n'); // no #! line: /bin/sh
  const plain = await distrun(on('one', '--script', sh, 'x y'));
  t.is(plain.stdout.toString(), 'h1: sh:x y:1\n', plain.stderr);
  const both = await distrun(on('one', '--script', sh, '-t'));
  t.is(both.code, 255);
  t.regex(both.stderr, /--script sends the script over stdin: it cannot go with -t/);
  // --tty too: the terminal would take the stdin the script travels on.
  const tty = await distrun(on('one', '--script', sh, '--tty'));
  t.is(tty.code, 255);
  t.regex(tty.stderr, /^distrun: --script sends the script over stdin: it cannot go with -t, --tty or --shell\n/);
  const dashArg = await distrun(on('one', '--script', sh, '--', '-t'));
  t.is(dashArg.stdout.toString(), 'h1: sh:-t:1\n', 'after --, -t is an argument of the script');
  const missing = await distrun(on('one', '--script', join(dir, 'nope.sh')));
  t.is(missing.code, 255);
  t.regex(missing.stderr, /cannot read script .*nope\.sh: no such file or directory\n/);
});

test('a command killed by a signal counts as 128 + the signal number', async (t) => {
  const r = await distrun(on('one', 'sh', '-c', 'kill -TERM $$'));
  t.is(r.code, 143);
  t.regex(r.stderr, /killed by SIGTERM/);
});

test('a missing program exits 127 with a clear reason', async (t) => {
  const r = await distrun(on('one', 'no-such-program-xyz'));
  t.is(r.code, 127);
  t.regex(r.stderr, /no-such-program-xyz: command not found/);
});

test('--shell runs the words through /bin/sh -c', async (t) => {
  const r = await distrun(on('one', '--shell', 'echo', '$((6*7))', '|', 'tr', '4', 'X'));
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout.toString(), 'h1: X2\n');
});

test('without -t the remote stdin is empty: bash exits at once', async (t) => {
  const r = await distrun(on('trio', 'bash'), { input: 'echo should-not-run\n' });
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout.toString(), '');
});

test('-t forwards stdin to every host; end of input closes only stdin', async (t) => {
  const r = await distrun(on('trio', '-t', 'sh', '-c', 'wc -l; sleep 0.3; echo after-eof'), { input: 'a\nb\nc\n' });
  t.is(r.code, 0, r.stderr);
  const lines = r.stdout.toString().trim().split('\n').sort();
  t.deepEqual(lines, ['h1: 3', 'h1: after-eof', 'h2: 3', 'h2: after-eof', 'h3: 3', 'h3: after-eof']);
});

test('a last line without newline is still printed', async (t) => {
  const r = await distrun(on('one', 'printf', 'first\\nno-newline'));
  t.is(r.stdout.toString(), 'h1: first\nh1: no-newline\n');
});

test('lines of several hosts never mix within a line', async (t) => {
  const r = await distrun(on('trio', 'sh', '-c', 'i=0; while [ $i -lt 2000 ]; do echo "line $i of a longer output line"; i=$((i+1)); done'));
  t.is(r.code, 0);
  const lines = r.stdout.toString().split('\n').filter(Boolean);
  t.is(lines.length, 6000);
  for (const line of lines) {
    if (!/^h[123]: line \d+ of a longer output line$/.test(line)) t.fail(`mixed line: ${line}`);
  }
});

test('--timeout kills the remote process group and exits 124', async (t) => {
  const marker = `sleep 3${Math.floor(Math.random() * 1e6)}.${RUN_TOKEN}`;
  const started = Date.now();
  const r = await distrun(on('one', '--timeout', '1', 'sh', '-c', `${marker} & ${marker}; echo never`));
  t.is(r.code, 124);
  t.true(Date.now() - started < 20_000);
  t.regex(r.stderr, /timed out/);
  t.true(await waitFor(() => processesMatching(marker).length === 0), 'no process of the group is left');
});

test('a client that disconnects makes the agent kill the whole group', async (t) => {
  const marker = `sleep 4${Math.floor(Math.random() * 1e6)}.${RUN_TOKEN}`;
  const { child, exit } = spawnDistrun(on('one', 'sh', '-c', `${marker} & ${marker}`));
  t.true(await waitFor(() => processesMatching(marker).length >= 4), 'distrun, sh and two sleeps');
  child.kill('SIGKILL');
  await exit;
  t.true(await waitFor(() => processesMatching(marker).length === 0, 15_000), processesMatching(marker).join('\n'));
});

test('Ctrl-C forwards SIGINT to the remote commands and exits 130', async (t) => {
  const { child, exit, stderr } = spawnDistrun(on('trio', 'sleep', '61'));
  t.true(await waitFor(() => agents.every((a) => a.logs.some((l) => l.msg === 'command' && JSON.stringify(l.argv) === '["sleep","61"]'))));
  child.kill('SIGINT');
  t.is(await exit, 130);
  t.regex(stderr(), /interrupt sent to 3 running command/);
  t.regex(stderr(), /killed by SIGINT/);
});

test('a second Ctrl-C disconnects; the agents kill commands that ignored the first', async (t) => {
  const marker = `sleep 5${Math.floor(Math.random() * 1e6)}.${RUN_TOKEN}`;
  const { child, exit } = spawnDistrun(on('one', 'sh', '-c', `trap '' INT; ${marker}`));
  t.true(await waitFor(() => processesMatching(marker).length >= 3), 'distrun, sh and sleep');
  child.kill('SIGINT');
  await new Promise((r) => setTimeout(r, 300));
  t.is(child.exitCode, null, 'still running after the first Ctrl-C');
  child.kill('SIGINT');
  t.is(await exit, 130);
  t.true(await waitFor(() => processesMatching(marker).length === 0, 15_000), processesMatching(marker).join('\n'));
});

test('one agent serves many concurrent sessions', async (t) => {
  const many = join(tempDir(), 'many.yaml');
  const names = Array.from({ length: 40 }, (_, i) => `alias${i}`);
  writeFileSync(
    many,
    ['hosts:', ...names.map((n) => `  ${n}: { address: 127.0.0.1, port: ${agents[1]!.port} }`), `groups:\n  many: [${names.join(', ')}]`, ''].join(
      '\n',
    ),
  );
  const r = await distrun(['-i', many, '--pki', pki.dir, '-g', 'many', 'sh', '-c', 'sleep 0.5; echo done']);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(r.stdout.toString().trim().split('\n').sort(), names.map((n) => `${n}: done`).sort());
});

test('stopping the agent stops its running commands; distrun reports how they ended', async (t) => {
  const agent = await startAgent(pki, 'agent1', { config: { drainSeconds: 0 } });
  const marker = `sleep 6${Math.floor(Math.random() * 1e6)}.${RUN_TOKEN}`;
  const { exit, stderr } = spawnDistrun(['--pki', pki.dir, '-H', `127.0.0.1:${agent.port}`, 'sh', '-c', `${marker}; echo unreachable`]);
  t.true(await waitFor(() => processesMatching(marker).length >= 3), 'distrun, sh and sleep');
  await agent.stop('SIGTERM');
  t.is(await exit, 143);
  t.regex(stderr(), /killed by SIGTERM/);
  t.true(await waitFor(() => processesMatching(marker).length === 0));
  t.true(agent.logs.some((l) => l.msg === 'stopping') && agent.logs.some((l) => l.msg === 'stopped'));
});

test('a client that reads slowly pauses the command: agent memory stays bounded', async (t) => {
  const marker = `${RUN_TOKEN}-${Math.floor(Math.random() * 1e6)}`;
  const socket = connectRaw(agents[2]!.port, pki.dir);
  const before = residentBytes(agents[2]!.process.pid!);
  // 400 MB of output that nobody reads: without backpressure the agent would buffer it.
  socket.write(
    Buffer.concat([
      encodeVersionOffer({ versions: [1], software: 'slow-reader' }),
      encodeCommand(['sh', '-c', `head -c 400000000 /dev/zero; echo ${marker} >/dev/null`]),
    ]),
  );
  socket.pause();
  // Other tests of this file block this worker now and then (spawnSync under script(1)):
  // measure from the moment the command runs.
  t.true(await waitFor(() => processesMatching(marker).length > 0), 'the command started');
  await new Promise((r) => setTimeout(r, 2000));
  const during = residentBytes(agents[2]!.process.pid!);
  t.true(during - before < 64 * 1024 * 1024, `agent grew by ${during - before} bytes`);
  t.true(processesMatching(marker).length > 0, 'the command is blocked, not finished');
  socket.destroy();
  t.true(await waitFor(() => processesMatching(marker).length === 0), 'and killed after the disconnect');
});

test('a reader that pauses after the command ended still gets all output and the exit status', async (t) => {
  const marker = `${RUN_TOKEN}-${Math.floor(Math.random() * 1e9)}`;
  const socket = connectRaw(agents[2]!.port, pki.dir);
  const decoder = new FrameDecoder();
  let outBytes = 0;
  let exit: string | undefined;
  socket.on('data', (chunk: Buffer) => {
    for (const frame of decoder.push(chunk)) {
      if (frame.token === 'OUT') outBytes += frame.payload.length;
      if (frame.token === 'EXT') exit = frame.payload.toString();
    }
  });
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.write(
    Buffer.concat([
      encodeVersionOffer({ versions: [1], software: 'pausing-reader' }),
      encodeCommand(['sh', '-c', `head -c 3000000 /dev/zero; : ${marker}`]),
    ]),
  );
  socket.pause();
  // The command cannot finish while nothing is read (backpressure): read a little first.
  await new Promise((r) => setTimeout(r, 300));
  socket.resume();
  t.true(await waitFor(() => agents[2]!.logs.some((l) => l.msg === 'exit' && l.bytesOut === 3000000)), 'the command ended');
  socket.pause();
  await new Promise((r) => setTimeout(r, 6500)); // longer than any linger an agent might apply
  socket.resume();
  socket.end();
  await closed;
  t.is(outBytes, 3_000_000);
  t.deepEqual(JSON.parse(exit ?? '{}'), { code: 0, timedOut: false });
});

test('an unreachable host is exit 255 and the others still run', async (t) => {
  const r = await distrun(['-i', inventory, '--pki', pki.dir, '-g', 'one', '-H', '127.0.0.1:1', 'echo', 'hi']);
  t.is(r.code, 255);
  t.is(r.stdout.toString(), 'h1: hi\n');
  t.regex(r.stderr, /^distrun: 127\.0\.0\.1:1: connection refused/m);
});

test('--dry-run prints the hosts and the exact argv and runs nothing', async (t) => {
  const r = await distrun(['-i', inventory, '-g', 'trio:!h2', '--dry-run', '--', 'printf', '%s', 'a b', '']);
  t.is(r.code, 0, r.stderr);
  const lines = r.stdout.toString().trim().split('\n');
  t.is(lines[0], 'argv: ["printf","%s","a b",""]');
  t.deepEqual(
    lines.slice(1).map((l) => l.split(/\s+/)[0]),
    ['h1', 'h3'],
  );
  const shell = await distrun(['-i', inventory, '-g', 'one', '--list-hosts', '--shell', 'echo', '$HOME']);
  t.is(shell.stdout.toString().split('\n')[0], 'argv: ["/bin/sh","-c","echo $HOME"]');
  await new Promise((resolve) => setTimeout(resolve, 200));
  // Other tests use the same agents concurrently: look for this test's argv only.
  t.false(
    agents.some((a) => a.logs.some((l) => JSON.stringify(l.argv) === '["printf","%s","a b",""]')),
    'no agent ran it',
  );
});

test('distrun hosts --explain says which part of the selection chose each host', async (t) => {
  const r = await distrun(['hosts', '-i', inventory, '-g', 'trio:&one', '-H', 'extra:7000', '--explain']);
  t.is(r.code, 0, r.stderr);
  const lines = r.stdout.toString().trim().split('\n');
  t.regex(lines[0]!, /^h1\s+127\.0\.0\.1:\d+\s+-g: group trio in 'trio:&one'$/);
  t.regex(lines[1]!, /^extra\s+extra:7000\s+-H extra:7000$/);
});

test('an Ansible YAML inventory works as it is (ansible_host, distrun_port)', async (t) => {
  const ansible = join(tempDir(), 'inventory.yml');
  writeFileSync(
    ansible,
    [
      'all:',
      '  children:',
      '    webservers:',
      '      hosts:',
      ...agents.map((a, i) => `        web${i + 1}: { ansible_host: 127.0.0.1, ansible_port: 22, distrun_port: ${a.port} }`),
      '',
    ].join('\n'),
  );
  const r = await distrun(['-i', ansible, '--pki', pki.dir, '-g', 'webservers', 'echo', 'from-ansible']);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(r.stdout.toString().trim().split('\n').sort(), ['web1: from-ansible', 'web2: from-ansible', 'web3: from-ansible']);
});

test('distrun hosts prints the resolved targets', async (t) => {
  const r = await distrun(['hosts', '-i', inventory, 'trio', '-x', 'h2']);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(listedHosts(r.stdout), ['h1', 'h3']);
});

test('inventory errors name the file and the entry, without a stack trace', async (t) => {
  const bad = join(tempDir(), 'bad.yaml');
  writeFileSync(bad, 'hosts:\n  web1: { port: 70000 }\n');
  const r = await distrun(['-i', bad, '-H', 'web1', 'true']);
  t.is(r.code, 255);
  t.regex(r.stderr, /bad\.yaml/);
  t.regex(r.stderr, /web1/);
  t.notRegex(r.stderr, /\n\s+at /);
  const unknown = await distrun(['-i', inventory, '-g', 'nope', 'true']);
  t.is(unknown.code, 255);
  t.regex(unknown.stderr, /unknown group or host 'nope'/);
});

test('the agent logs session start, command and exit as JSON', async (t) => {
  await distrun(on('one', 'echo', 'logged'));
  const logs = agents[0]!.logs;
  t.true(logs.some((l) => l.msg === 'session start' && l.client === 'admin'));
  t.true(logs.some((l) => l.msg === 'command' && JSON.stringify(l.argv) === '["echo","logged"]'));
  t.true(logs.some((l) => l.msg === 'exit' && l.code === 0 && typeof l.durationMs === 'number' && l.bytesOut === 7));
});

test('a port where something other than an agent answers: "not a DistRunner agent", no OpenSSL internals', async (t) => {
  // An ssh server's banner: what an operator gets who typed the ssh port.
  const server = createServer((socket) => {
    socket.on('error', () => {});
    socket.end('SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  const { port } = server.address() as AddressInfo;
  const r = await distrun(['-H', `127.0.0.1:${port}`, '--pki', pki.dir, '--', 'true']);
  t.is(r.code, 255);
  t.regex(r.stderr, new RegExp(`not a DistRunner agent \\(the service on port ${port} does not speak TLS\\)`));
  t.notRegex(r.stderr, /SSL routines|deps\/openssl|ERR_SSL|EPROTO|\^J/);
});
