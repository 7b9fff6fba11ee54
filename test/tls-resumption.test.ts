// TLS session resumption: distrun keeps the agents' session tickets between runs, so a
// later run skips the certificate exchange. What must not change: a reload voids every
// ticket (a revoked client is refused even with one), an expired certificate is refused
// on resumption, tickets belong to one client identity, and the cache is private.
import test from 'ava';
import { chmodSync, existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupAll, distrun, makePki, startAgent, tempDir, waitFor, writeAgentConfig, type RunningAgent } from './helpers/fleet.js';
import { forgeClientIdentity } from './helpers/forged-certs.js';

test.after.always(cleanupAll);

/** `resumed` of every 'session start' the agent logged, in order. */
function resumptions(agent: RunningAgent): boolean[] {
  return agent.logs.filter((l) => l.msg === 'session start').map((l) => l.resumed as boolean);
}

async function runTrue(agent: RunningAgent, pkiDir: string, env: NodeJS.ProcessEnv): Promise<void> {
  const sessions = resumptions(agent).length;
  const r = await distrun(['-H', `127.0.0.1:${agent.port}`, '--pki', pkiDir, 'true'], { env });
  if (r.code !== 0) throw new Error(`distrun failed: ${r.stderr}`);
  if (!(await waitFor(() => resumptions(agent).length > sessions))) throw new Error('the agent did not log the session');
}

test('the second run resumes; the ticket cache is private; a reload voids every ticket', async (t) => {
  const pki = await makePki(['agent1']);
  const agent = await startAgent(pki, 'agent1');
  const env = { XDG_CACHE_HOME: tempDir() };
  await runTrue(agent, pki.dir, env);
  await runTrue(agent, pki.dir, env);
  t.deepEqual(resumptions(agent), [false, true]);
  const dir = join(env.XDG_CACHE_HOME, 'distrun', 'tls');
  t.is(statSync(dir).mode & 0o777, 0o700);
  const [file] = readdirSync(dir);
  t.regex(file!, /^sessions-[0-9a-f]{16}\.jsonl$/);
  t.is(statSync(join(dir, file!)).mode & 0o777, 0o600);

  t.is((await agent.reload()).msg, 'reloaded');
  await runTrue(agent, pki.dir, env);
  await runTrue(agent, pki.dir, env);
  t.deepEqual(resumptions(agent), [false, true, false, true], 'after the reload: one full handshake, then resumption again');
});

test('a client revoked after its last run is refused, ticket or not', async (t) => {
  const pki = await makePki(['agent1']);
  t.is((await distrun(['certs', 'client', 'eve', '--dir', pki.dir])).code, 0);
  const eve = join(pki.dir, 'clients', 'eve');
  const agent = await startAgent(pki, 'agent1');
  const env = { XDG_CACHE_HOME: tempDir() };
  await runTrue(agent, eve, env);
  await runTrue(agent, eve, env);
  t.deepEqual(resumptions(agent), [false, true], 'eve holds a working ticket');

  t.is((await distrun(['certs', 'revoke', 'eve', '--dir', pki.dir])).code, 0);
  writeAgentConfig(pki, 'agent1', { crl: join(pki.dir, 'crl.pem') }, agent.configFile);
  t.is((await agent.reload()).msg, 'reloaded');
  const refused = await distrun(['-H', `127.0.0.1:${agent.port}`, '--pki', eve, 'echo', 'x'], { env });
  t.is(refused.code, 255);
  t.is(refused.stdout.length, 0);
  t.regex(refused.stderr, /client certificate has been revoked/);
  t.true(await waitFor(() => agent.logs.some((l) => l.msg === 'refused: client certificate not accepted' && l.verifyError === 'CERT_REVOKED')));
});

test('a certificate that expired since the session began is refused on resumption', async (t) => {
  const pki = await makePki(['agent1']);
  const agent = await startAgent(pki, 'agent1');
  const env = { XDG_CACHE_HOME: tempDir() };
  // Long enough for the first run on a loaded machine; the wait is for the expiry itself.
  const notAfter = new Date(Date.now() + 10_000);
  const shortLived = forgeClientIdentity(pki.dir, join(tempDir(), 'short'), { commonName: 'short', notAfter });
  await runTrue(agent, shortLived, env);
  await waitFor(() => Date.now() > notAfter.getTime() + 1000, 15_000);
  const r = await distrun(['-H', `127.0.0.1:${agent.port}`, '--pki', shortLived, 'echo', 'x'], { env });
  t.is(r.code, 255);
  t.regex(r.stderr, /client certificate has expired or is not valid yet/);
  t.true(await waitFor(() => agent.logs.some((l) => l.msg === 'refused: certificate not valid now' && l.resumed === true)));
});

test('tickets belong to one client identity, and are neither read nor written when the cache is off', async (t) => {
  const pki = await makePki(['agent1']);
  t.is((await distrun(['certs', 'client', 'second', '--dir', pki.dir])).code, 0);
  const agent = await startAgent(pki, 'agent1');
  const cache = tempDir();
  const env = { XDG_CACHE_HOME: cache };
  await runTrue(agent, pki.dir, env);
  await runTrue(agent, join(pki.dir, 'clients', 'second'), env);
  const starts = agent.logs.filter((l) => l.msg === 'session start');
  t.deepEqual(
    starts.map((l) => [l.client, l.resumed]),
    [
      ['admin', false],
      ['second', false],
    ],
    "the second identity does not resume the first one's session",
  );
  t.is(readdirSync(join(cache, 'distrun', 'tls')).length, 2);

  const off = { XDG_CACHE_HOME: tempDir(), DISTRUN_TLS_CACHE: 'off' };
  await runTrue(agent, pki.dir, off);
  await runTrue(agent, pki.dir, off);
  t.deepEqual(resumptions(agent).slice(-2), [false, false]);
  t.false(existsSync(join(off.XDG_CACHE_HOME, 'distrun', 'tls')));
});

test('a damaged cache costs only a full handshake; a cache in a shared directory is not used', async (t) => {
  const pki = await makePki(['agent1']);
  const agent = await startAgent(pki, 'agent1');
  const env = { XDG_CACHE_HOME: tempDir() };
  await runTrue(agent, pki.dir, env);
  const dir = join(env.XDG_CACHE_HOME, 'distrun', 'tls');
  const [file] = readdirSync(dir);
  writeFileSync(join(dir, file!), '{"version":1,"sessions":{"x": 1}, garbage');
  await runTrue(agent, pki.dir, env);
  await runTrue(agent, pki.dir, env);
  t.deepEqual(resumptions(agent), [false, false, true]);

  // Anyone may write to a sticky world-writable directory (like /tmp): tickets there could be planted.
  const shared = join(tempDir(), 'shared');
  mkdirSync(join(shared, 'distrun', 'tls'), { recursive: true });
  chmodSync(join(shared, 'distrun', 'tls'), 0o1777);
  await runTrue(agent, pki.dir, { XDG_CACHE_HOME: shared });
  await runTrue(agent, pki.dir, { XDG_CACHE_HOME: shared });
  t.deepEqual(resumptions(agent).slice(-2), [false, false]);
  t.deepEqual(readdirSync(join(shared, 'distrun', 'tls')), []);
});

test('an agent with tlsSessionSeconds: 0 makes a full handshake every time', async (t) => {
  const pki = await makePki(['agent1']);
  const agent = await startAgent(pki, 'agent1', { config: { tlsSessionSeconds: 0 } });
  const env = { XDG_CACHE_HOME: tempDir() };
  for (let i = 0; i < 3; i += 1) await runTrue(agent, pki.dir, env);
  t.deepEqual(resumptions(agent), [false, false, false]);
});
