// Authorization: policy rules, run-as users, and the audit trail (including when it
// cannot be written).
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupAll, distrun, makePki, startAgent, tempDir, type Pki, type RunningAgent } from './helpers/fleet.js';
import { assertStillServing } from './helpers/serving.js';
import { jsonLines } from './helpers/json-lines.js';

let pki: Pki;
let agent: RunningAgent;
let audit: string;
const isRoot = process.getuid?.() === 0;

test.before(async () => {
  pki = await makePki(['agent1']);
  for (const name of ['ops-bot', 'stranger']) {
    const r = await distrun(['certs', 'client', name, '--dir', pki.dir]);
    if (r.code !== 0) throw new Error(r.stderr);
  }
  audit = join(tempDir(), 'audit.jsonl');
  agent = await startAgent(pki, 'agent1', {
    config: {
      auditLog: audit,
      runAs: isRoot ? 'nobody' : undefined,
      policy: [
        { clients: ['admin'], commands: ['echo', 'id', '/usr/bin/*'], shell: false, env: ['APP_*'] },
        { clients: ['ops-*'], commands: ['*'], shell: true, ...(isRoot ? { runAs: 'root' } : {}) },
      ],
    },
  });
});
test.after.always(cleanupAll);

const as = (client: string | undefined, ...args: string[]) =>
  distrun(['-H', `127.0.0.1:${agent.port}`, '--pki', client ? join(pki.dir, 'clients', client) : pki.dir, ...args]);

const auditRecords = () => jsonLines(readFileSync(audit, 'utf8'));

test('an allowed command runs', async (t) => {
  const r = await as(undefined, 'echo', 'allowed');
  t.is(r.stdout.toString(), '127.0.0.1: allowed\n', r.stderr);
  const wildcard = await as(undefined, '/usr/bin/true');
  t.is(wildcard.code, 0, wildcard.stderr);
});

test('a command outside the rule is denied with the reason, and audited', async (t) => {
  const r = await as(undefined, 'cat', '/etc/shadow');
  t.is(r.code, 255);
  t.regex(r.stderr, /command "cat" is not allowed for this client/);
  t.is(r.stdout.toString(), '');
  const denied = auditRecords().filter((a) => a.event === 'denied' && a.argv?.[0] === 'cat');
  t.is(denied.length, 1);
  t.is(denied[0].client.name, 'admin');
  t.regex(denied[0].reason, /not allowed/);
  await assertStillServing(t, agent, pki.dir);
});

test('a path that only looks allowed is denied: patterns are anchored', async (t) => {
  const r = await as(undefined, '/tmp/usr/bin/evil');
  t.is(r.code, 255);
  t.regex(r.stderr, /not allowed/);
  const dots = await as(undefined, '/usr/bin/../../bin/sh', '-c', 'echo escaped');
  t.is(dots.code, 255, 'the path is normalized to /bin/sh before matching');
  t.regex(dots.stderr, /command "\/bin\/sh" is not allowed/);
  await assertStillServing(t, agent, pki.dir);
});

test('--shell is denied unless the rule allows it', async (t) => {
  const r = await as(undefined, '--shell', 'echo', 'hi');
  t.is(r.code, 255);
  t.regex(r.stderr, /shell commands are not allowed for this client/);
  await assertStillServing(t, agent, pki.dir);
  const ops = await as('ops-bot', '--shell', 'echo', '$((1+1))');
  t.is(ops.stdout.toString(), '127.0.0.1: 2\n', ops.stderr);
});

test('--env and --cwd only as far as the rule allows; env values are never logged', async (t) => {
  const secret = 'env-secret-93f1';
  const ok = await as(undefined, '--env', `APP_TOKEN=${secret}`, '/usr/bin/env');
  t.true(ok.stdout.toString().includes(`127.0.0.1: APP_TOKEN=${secret}\n`), ok.stderr);
  const denied = await as(undefined, '--env', 'OTHER_SETTING=1', 'echo', 'x');
  t.is(denied.code, 255);
  t.regex(denied.stderr, /--env OTHER_SETTING is not allowed for this client and command/);
  const cwd = await as(undefined, '--cwd', '/tmp', 'echo', 'x');
  t.regex(cwd.stderr, /--cwd is not allowed/);
  const start = auditRecords().find((a) => a.event === 'start' && a.envNames?.includes('APP_TOKEN'));
  t.truthy(start);
  t.false(readFileSync(audit, 'utf8').includes(secret), 'audit has names, not values');
  t.false(agent.rawLog().includes(secret), 'log has names, not values');
  await assertStillServing(t, agent, pki.dir);
});

test('a client with no rule is denied everything', async (t) => {
  const r = await as('stranger', 'echo', 'x');
  t.is(r.code, 255);
  t.regex(r.stderr, /no policy rule for client stranger/);
  await assertStillServing(t, agent, pki.dir);
});

// The run-as tests switch users, which needs root (CI runs as root on these machines).
(isRoot ? test : test.skip)('commands run as the configured user, with its groups and HOME, unless the rule says otherwise', async (t) => {
  const expected = execFileSync('id', ['nobody'], { encoding: 'utf8' }).trim();
  const r = await as(undefined, 'id');
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout.toString().trim(), `127.0.0.1: ${expected}`);
  const env = await as(undefined, '/usr/bin/env');
  const lines = env.stdout.toString().split('\n');
  t.true(lines.includes('127.0.0.1: USER=nobody'));
  t.true(lines.includes('127.0.0.1: HOME=/nonexistent'));
  t.true(lines.includes('127.0.0.1: DISTRUN_CLIENT=admin'));
  t.false(
    lines.some((l) => l.includes('DISTRUNNER_')),
    'the agent environment is not passed on',
  );
  const root = await as('ops-bot', 'id', '-u');
  t.is(root.stdout.toString(), '127.0.0.1: 0\n');
  const missing = await as(undefined, 'id-does-not-exist');
  t.is(missing.code, 255, 'denied by policy before lookup');
});

test('every command has a start and an end audit record with the same id', async (t) => {
  const r = await as(undefined, 'echo', 'audited');
  t.is(r.code, 0);
  const records = auditRecords();
  const start = records.filter((a) => a.event === 'start' && a.argv?.[1] === 'audited').pop()!;
  t.truthy(start);
  const end = records.find((a) => a.event === 'end' && a.id === start.id)!;
  t.truthy(end);
  t.is(start.client.name, 'admin');
  t.regex(start.client.serial, /^[0-9a-f]{32}$/);
  t.regex(start.client.fingerprint, /^[0-9A-F:]{95}$/);
  t.regex(start.peer, /^127\.0\.0\.1:\d+$/);
  t.is(typeof start.session, 'number');
  t.is(start.runAs, isRoot ? 'nobody' : (process.env.USER ?? start.runAs));
  t.truthy(Date.parse(start.startTime));
  t.truthy(Date.parse(end.endTime));
  t.deepEqual(end.exit, { code: 0, timedOut: false });
  t.is(end.bytesOut, 8);
  t.is(statSync(audit).mode & 0o777, 0o600);
});

test('when the audit log cannot be written, commands are refused (fail closed)', async (t) => {
  const dir = tempDir();
  const file = join(dir, 'audit.jsonl');
  const local = await startAgent(pki, 'agent1', { config: { auditLog: file } });
  t.is((await distrun(['-H', `127.0.0.1:${local.port}`, '--pki', pki.dir, 'true'])).code, 0);
  rmSync(file);
  mkdirSync(file); // appending to a directory fails, even for root
  const r = await distrun(['-H', `127.0.0.1:${local.port}`, '--pki', pki.dir, 'echo', 'unaudited']);
  t.is(r.code, 255);
  t.regex(r.stderr, /cannot write its audit log; commands are refused/);
  t.is(r.stdout.toString(), '');
  t.true(local.logs.some((l) => l.msg === 'audit log unavailable: refusing the command'));
  rmSync(file, { recursive: true });
  await assertStillServing(t, local, pki.dir);
});
