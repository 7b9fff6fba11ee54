// The agent as a daemon: version, config check, systemd readiness, drain on SIGTERM,
// and `distrun ping`.
import { PROTOCOL_VERSION } from '../src/protocol/constants.js';
import test from 'ava';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  AGENT,
  DISTRUN,
  cleanupAll,
  distrun,
  makePki,
  run,
  spawnDistrun,
  startAgent,
  tempDir,
  waitFor,
  writeAgentConfig,
  type Pki,
} from './helpers/fleet.js';
import { assertStillServing } from './helpers/serving.js';

let pki: Pki;
const version = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

test.before(async () => {
  pki = await makePki(['agent1']);
});
test.after.always(cleanupAll);

test('--version prints the package version', async (t) => {
  for (const bin of [AGENT, DISTRUN]) {
    const r = await run(bin, ['--version']);
    t.is(r.code, 0);
    t.is(r.stdout.toString().trim(), version);
  }
});

test('--check-config accepts a valid configuration and refuses a broken one with exit 78', async (t) => {
  const good = await run(AGENT, ['--config', writeAgentConfig(pki, 'agent1'), '--check-config']);
  t.is(good.code, 0, good.stderr);
  t.regex(good.stdout.toString(), /configuration OK/);
  const missingKey = await run(AGENT, ['--config', writeAgentConfig(pki, 'agent1', { key: '/nonexistent/agent.key' }), '--check-config']);
  t.is(missingKey.code, 78);
  t.regex(missingKey.stderr, /cannot read private key \/nonexistent\/agent\.key: ENOENT/);
  const badYaml = join(tempDir(), 'agent.yaml');
  writeFileSync(badYaml, 'port: [\n');
  const r = await run(AGENT, ['--config', badYaml, '--check-config']);
  t.is(r.code, 78);
  t.regex(r.stderr, /invalid YAML/);
});

test('an agent listens on every address it is given, on one port', async (t) => {
  const issued = await distrun(['certs', 'agent', 'twoaddr', '--ip', '127.0.0.1', '--ip', '127.0.0.2', '--dir', pki.dir]);
  t.is(issued.code, 0, issued.stderr);
  const agent = await startAgent(pki, 'twoaddr', { config: { host: ['127.0.0.1', '127.0.0.2'] } });
  const listening = agent.logs.find((l) => l.msg === 'listening')!;
  t.deepEqual(listening.listen, [`127.0.0.1:${agent.port}`, `127.0.0.2:${agent.port}`]);
  const r = await distrun(['-H', `127.0.0.1:${agent.port},127.0.0.2:${agent.port}`, '--pki', pki.dir, 'echo', 'hi']);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(r.stdout.toString().split('\n').filter(Boolean).sort(), ['127.0.0.1: hi', '127.0.0.2: hi']);
  // An address that is not on this machine: the agent names it and exits 78.
  const bad = await run(AGENT, ['--config', writeAgentConfig(pki, 'twoaddr', { host: '127.0.0.1,192.0.2.1' })]);
  t.is(bad.code, 78);
  t.regex(bad.stderr, /cannot listen on 192\.0\.2\.1:\d+: EADDRNOTAVAIL/);
});

/** A unix datagram socket standing in for systemd's NOTIFY_SOCKET; prints what it receives. */
function fakeNotifySocket(path: string) {
  const code = [
    'import socket, sys',
    's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
    's.bind(sys.argv[1])',
    'print("bound", flush=True)',
    'while True:',
    '    print(s.recv(4096).decode().replace("\\n", " | "), flush=True)',
  ].join('\n');
  const child = spawn('python3', ['-c', code, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: string[] = [];
  child.stdout.on('data', (c: Buffer) => lines.push(...c.toString().split('\n').filter(Boolean)));
  return { child, lines };
}

test('with NOTIFY_SOCKET the agent reports READY=1 once listening, and STOPPING=1 on stop', async (t) => {
  const socketPath = join(tempDir(), 'notify.sock');
  const listener = fakeNotifySocket(socketPath);
  try {
    t.true(await waitFor(() => listener.lines.includes('bound')));
    const config = writeAgentConfig(pki, 'agent1');
    const agent = spawn(process.execPath, [AGENT, '--config', config], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, NOTIFY_SOCKET: socketPath },
    });
    let log = '';
    agent.stdout.on('data', (c: Buffer) => {
      log += c.toString();
    });
    t.true(await waitFor(() => listener.lines.some((l) => l.includes('READY=1'))), listener.lines.join('\n'));
    // READY is only sent after the agent listens.
    t.regex(log, /"msg":"listening"/);
    const ready = listener.lines.find((l) => l.includes('READY=1'))!;
    t.regex(ready, /STATUS=listening on 127\.0\.0\.1:\d+/);
    t.regex(ready, new RegExp(`MAINPID=${agent.pid}`));
    const exited = new Promise<number | null>((resolve) => agent.once('exit', (code) => resolve(code)));
    agent.kill('SIGTERM');
    t.is(await exited, 0);
    t.true(await waitFor(() => listener.lines.some((l) => l.includes('STOPPING=1'))));
  } finally {
    listener.child.kill();
  }
});

test('SIGTERM drains: running commands may finish, new connections are refused with a reason, then exit 0', async (t) => {
  const agent = await startAgent(pki, 'agent1', { config: { drainSeconds: 20 } });
  const at = ['-H', `127.0.0.1:${agent.port}`, '--pki', pki.dir];
  // The running command ends when the test says so, not after a time that load could outlast.
  const go = join(tempDir(), 'go');
  const finishing = spawnDistrun([...at, 'sh', '-c', `while [ ! -e ${go} ]; do sleep 0.05; done; echo finished`]);
  t.true(await waitFor(() => agent.logs.some((l) => l.msg === 'command')));
  agent.process.kill('SIGTERM');
  await agent.waitForLog('draining');
  const late = await distrun([...at, 'echo', 'late']);
  t.is(late.code, 255);
  t.true(late.stderr.includes(`127.0.0.1:${agent.port}: agent is shutting down`), late.stderr);
  await agent.waitForLog('refused: shutting down');
  writeFileSync(go, '');
  t.is(await finishing.exit, 0, finishing.stderr());
  await agent.stop();
  t.is(agent.process.exitCode, 0);
  t.truthy(agent.logs.find((l) => l.msg === 'stopped'));
});

test('after the drain time commands are stopped; a second SIGTERM kills them at once', async (t) => {
  const agent = await startAgent(pki, 'agent1', { config: { drainSeconds: 1 } });
  const at = ['-H', `127.0.0.1:${agent.port}`, '--pki', pki.dir];
  const long = spawnDistrun([...at, 'sleep', '60']);
  t.true(await waitFor(() => agent.logs.some((l) => l.msg === 'command')));
  agent.process.kill('SIGTERM');
  t.is(await long.exit, 143, 'SIGTERM after the drain time');

  const patient = await startAgent(pki, 'agent1', { config: { drainSeconds: 600, killGraceSeconds: 600 } });
  const at2 = ['-H', `127.0.0.1:${patient.port}`, '--pki', pki.dir];
  const stubborn = spawnDistrun([...at2, 'sh', '-c', "trap '' TERM; sleep 60"]);
  t.true(await waitFor(() => patient.logs.some((l) => l.msg === 'command')));
  patient.process.kill('SIGTERM');
  await patient.waitForLog('draining');
  patient.process.kill('SIGTERM');
  await patient.stop();
  t.is(patient.process.exitCode, 0);
  t.is(await stubborn.exit, 255, 'the connection dropped when the agent exited');
  t.truthy(patient.logs.find((l) => l.msg === 'second stop signal: killing commands and exiting now'));
});

test('distrun ping reports round-trip time, versions and certificate expiry', async (t) => {
  const dir = tempDir();
  const token = join(dir, 'token');
  writeFileSync(token, 'ping-token', { mode: 0o600 });
  const plain = await startAgent(pki, 'agent1');
  const guarded = await startAgent(pki, 'agent1', { config: { tokenFile: token } });
  const r = await distrun(['ping', '-H', `127.0.0.1:${plain.port}`, '--pki', pki.dir]);
  t.is(r.code, 0, r.stderr);
  t.regex(
    r.stdout.toString(),
    new RegExp(
      `^127\\.0\\.0\\.1: ok  rtt \\d+\\.\\d ms  connect \\d+\\.\\d ms  distrunner-agent/${version.replace(/\./g, '\\.')}  protocol ${PROTOCOL_VERSION}  certificate expires \\d{4}-\\d\\d-\\d\\d \\((82[45]) days\\)\\n$`,
    ),
  );
  t.false(
    plain.logs.some((l) => l.msg === 'command'),
    'a ping runs nothing',
  );
  // Options given before the subcommand apply to it (as if given after its name).
  const before = await distrun(['-H', `127.0.0.1:${plain.port}`, '--pki', pki.dir, 'ping']);
  t.is(before.code, 0, before.stderr);
  t.regex(before.stdout.toString(), /^127\.0\.0\.1: ok /);

  const json = await distrun(['ping', '--json', '-H', `127.0.0.1:${guarded.port}`, '-H', '127.0.0.1:1', '--pki', pki.dir], {
    env: { DISTRUN_TOKEN_FILE: token },
  });
  t.is(json.code, 255, 'an unreachable host makes the exit code 255');
  const records = json.stdout
    .toString()
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  t.like(
    records.find((x) => x.port === guarded.port),
    { status: 'ok', protocol: PROTOCOL_VERSION, agent: `distrunner-agent/${version}` },
  );
  t.like(
    records.find((x) => x.port === 1),
    { status: 'unreachable', error: { code: 'E_CONNECT' } },
  );

  const noToken = await distrun(['ping', '-H', `127.0.0.1:${guarded.port}`, '--pki', pki.dir]);
  t.is(noToken.code, 255);
  t.regex(noToken.stderr, /requires an authentication token/);
});

test('a SIGHUP while the agent is still starting is a reload once it serves, not its death', async (t) => {
  // A mkfifo that holds the agent's start (its pipe pool's first batch) until told to go on.
  const dir = tempDir();
  const started = join(dir, 'started');
  const go = join(dir, 'go');
  mkdirSync(join(dir, 'bin'));
  writeFileSync(
    join(dir, 'bin', 'mkfifo'),
    [
      '#!/bin/sh',
      // The pipe pool's helper shell is our parent; the agent is its parent.
      `ps -o ppid= -p $PPID > ${started}.tmp && mv ${started}.tmp ${started}`,
      `while [ ! -e ${go} ]; do sleep 0.05; done`,
      'exec /usr/bin/mkfifo "$@"',
    ].join('\n'),
    { mode: 0o755 },
  );
  // (The pool is made only where commands are started by Node's spawn: DISTRUNNER_SPAWN=fork.)
  const starting = startAgent(pki, 'agent1', { env: { PATH: `${join(dir, 'bin')}:${process.env.PATH}`, DISTRUNNER_SPAWN: 'fork' } });
  t.true(await waitFor(() => existsSync(started), 30_000), 'the agent reached its pipe pool');
  const pid = Number(readFileSync(started, 'utf8').trim());
  t.true(pid > 0);
  process.kill(pid, 'SIGHUP');
  writeFileSync(go, '');
  const agent = await starting;
  t.is(agent.process.pid, pid);
  const reload = await agent.waitForLog('reloaded');
  t.truthy(agent.logs.find((l) => l.msg === 'reload asked for while starting'));
  t.true(agent.logs.indexOf(reload) > agent.logs.findIndex((l) => l.msg === 'listening'), 'the reload comes once the agent serves');
  t.is(agent.process.exitCode, null);
  // Later reloads work as ever.
  t.is((await agent.reload()).msg, 'reloaded');
  await assertStillServing(t, agent, pki.dir);
});

test("distrun ping over a resumed TLS session still reports the agent certificate's expiry", async (t) => {
  const agent = await startAgent(pki, 'agent1');
  const env = { XDG_CACHE_HOME: tempDir() };
  const ping = (extra: string[] = []) => distrun(['ping', ...extra, '-H', `127.0.0.1:${agent.port}`, '--pki', pki.dir], { env });
  t.is((await ping()).code, 0);
  const since = agent.logs.length;
  const again = await ping();
  const json = await ping(['--json']);
  const resumed = agent.logs
    .slice(since)
    .filter((l) => l.msg === 'session start')
    .map((l) => l.resumed);
  t.deepEqual(resumed, [true, true], "the later pings resumed the first one's TLS session");
  t.is(again.code, 0, again.stderr);
  t.regex(again.stdout.toString(), /certificate expires \d{4}-\d\d-\d\d \(82[45] days\)\n$/);
  const record = JSON.parse(json.stdout.toString()) as { certificateExpires: string | null; certificateDaysLeft: number | null };
  t.regex(record.certificateExpires ?? 'null', /^\d{4}-\d\d-\d\dT/);
  t.true((record.certificateDaysLeft ?? 0) > 800);
});
