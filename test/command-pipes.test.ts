// Commands write their output into real pipes (as under a shell or sshd), made from
// FIFOs the agent removes at once (or, with the native spawn, by pipe2); without mkfifo
// the fallback spawn uses socketpairs.
import test from 'ava';
import { join } from 'node:path';
import { cleanupAll, distrun, makePki, startAgent, tempDir, waitFor, type Pki } from './helpers/fleet.js';
import { readdirSync, writeFileSync } from 'node:fs';

let pki: Pki;
test.before(async () => {
  pki = await makePki(['agent1']);
});
test.after.always(cleanupAll);

const KIND = '[ -p /dev/stdout ] && echo "out pipe" || echo "out socket"; [ -p /dev/stderr ] && echo "err pipe" >&2 || echo "err socket" >&2';

test("stdout and stderr are pipes; output that outlives the command's leader still arrives; nothing is left in the temp directory", async (t) => {
  const runtime = tempDir();
  const agent = await startAgent(pki, 'agent1', { env: { RUNTIME_DIRECTORY: runtime } });
  const at = ['-H', `127.0.0.1:${agent.port}`, '--pki', pki.dir];
  const r = await distrun([...at, '-N', '/bin/sh', '-c', KIND]);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout.toString(), 'out pipe\n');
  t.regex(r.stderr, /err pipe/);
  // The leader exits at once; a child keeps the pipe open and writes a second later.
  const late = await distrun([...at, '-N', '/bin/sh', '-c', '(sleep 1; echo late) & echo early']);
  t.is(late.code, 0, late.stderr);
  t.is(late.stdout.toString(), 'early\nlate\n');
  t.deepEqual(readdirSync(runtime), []);
  // Killed outright, the agent leaves nothing either: its helper removes what it made.
  await agent.stop('SIGKILL');
  t.true(await waitFor(() => readdirSync(runtime).length === 0));
});

test('more sessions at once than the pool has pipes: every host gets its whole output', async (t) => {
  // 80 handshakes at once from one address: on a loaded machine more than the default 64 per
  // source are still in their handshake together, and the agent would drop the oldest.
  const agent = await startAgent(pki, 'agent1', { config: { maxSessionsPerClient: 100, maxPendingConnectionsPerSource: 128 } });
  const inventory = join(tempDir(), 'hosts.yaml');
  writeFileSync(inventory, `hosts:\n  p[01-80]: { address: 127.0.0.1, port: ${agent.port} }\n`);
  const r = await distrun(['-i', inventory, '--pki', pki.dir, '-g', 'all', '-f', '80', '/bin/sh', '-c', `${KIND}; head -c 100000 /dev/zero | wc -c`]);
  t.is(r.code, 0, r.stderr);
  const lines = r.stdout.toString().trim().split('\n');
  t.is(lines.filter((l) => / 100000$/.test(l)).length, 80);
  t.is(lines.filter((l) => / out (pipe|socket)$/.test(l)).length, 80);
  t.true(lines.some((l) => l.endsWith('out pipe')));
});

test('without mkfifo the agent says so once and commands write into socketpairs', async (t) => {
  // No mkfifo on this PATH (commands are named by full path below). The pipe pool is the
  // fallback's (Node's spawn); the native spawn makes its pipes with pipe2 and needs none.
  const agent = await startAgent(pki, 'agent1', { env: { PATH: tempDir(), DISTRUNNER_SPAWN: 'fork' } });
  t.true(agent.logs.some((l) => l.msg === 'cannot make pipes for commands: their output goes through socketpairs'));
  const r = await distrun(['-H', `127.0.0.1:${agent.port}`, '--pki', pki.dir, '-N', '/bin/sh', '-c', KIND]);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout.toString(), 'out socket\n');
  t.regex(r.stderr, /err socket/);
});
