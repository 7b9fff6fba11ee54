// Attacks on identity: who may complete a handshake and open a session.
import test from 'ava';
import { copyFileSync, mkdirSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { FrameDecoder, type Frame } from '../src/protocol/frame-decoder.js';
import { encodeVersionOffer } from '../src/protocol/messages.js';
import {
  cleanupAll,
  distrun,
  failureIn,
  makePki,
  spawnDistrun,
  startAgent,
  tempDir,
  waitFor,
  writeAgentConfig,
  type Pki,
  type RunningAgent,
} from './helpers/fleet.js';
import { forgeClientIdentity } from './helpers/forged-certs.js';
import { assertStillServing } from './helpers/serving.js';

let pki: Pki;
let agent: RunningAgent;

test.before(async () => {
  pki = await makePki(['agent1']);
  agent = await startAgent(pki, 'agent1');
});
test.after.always(cleanupAll);

const at = (a: RunningAgent) => ['-H', `127.0.0.1:${a.port}`];

/** A directory with `ca.crt` from one PKI and the client identity from another place. */
function mixedIdentity(caFrom: string, clientFrom: string, certName = 'client'): string {
  const dir = join(tempDir(), 'identity');
  mkdirSync(dir);
  copyFileSync(join(caFrom, 'ca.crt'), join(dir, 'ca.crt'));
  copyFileSync(join(clientFrom, `${certName}.crt`), join(dir, 'client.crt'));
  copyFileSync(join(clientFrom, `${certName}.key`), join(dir, 'client.key'));
  return dir;
}

async function refused(t: import('ava').ExecutionContext, identity: string, reason: RegExp, target = agent): Promise<void> {
  const before = target.logs.length;
  const r = await distrun([...at(target), '--pki', identity, 'echo', 'should-not-run']);
  t.is(r.code, 255);
  t.is(r.stdout.toString(), '');
  t.regex(r.stderr, reason);
  t.true(
    await waitFor(() => target.logs.slice(before).some((l) => /tls handshake failed|refused/.test(String(l.msg)))),
    'the agent logged the refusal',
  );
  await assertStillServing(t, target, pki.dir);
}

test('a client certificate from a foreign CA is refused at the handshake', async (t) => {
  const foreign = await makePki([]);
  await refused(t, mixedIdentity(pki.dir, foreign.dir), /client certificate is not issued by this fleet's CA/);
});

test('an expired client certificate is refused', async (t) => {
  const dir = forgeClientIdentity(pki.dir, join(tempDir(), 'expired'), {
    commonName: 'old',
    notBefore: new Date(Date.now() - 10 * 86400_000),
    notAfter: new Date(Date.now() - 86400_000),
  });
  await refused(t, dir, /client certificate has expired/);
});

test('a client certificate that is not valid yet is refused', async (t) => {
  const dir = forgeClientIdentity(pki.dir, join(tempDir(), 'future'), {
    commonName: 'future',
    notBefore: new Date(Date.now() + 86400_000),
    notAfter: new Date(Date.now() + 10 * 86400_000),
  });
  await refused(t, dir, /client certificate is not valid yet/);
});

test('a certificate issued for server use only is refused as a client certificate', async (t) => {
  const dir = forgeClientIdentity(pki.dir, join(tempDir(), 'server-only'), { commonName: 'sneaky', usage: 'server' });
  await refused(t, dir, /certificate/);
});

test('a certificate without an extended key usage is refused as a client certificate', async (t) => {
  const dir = forgeClientIdentity(pki.dir, join(tempDir(), 'no-eku'), { commonName: 'bare', usage: 'none' });
  await refused(t, dir, /certificate is not issued for client use/);
});

test("an agent's certificate does not work as a client certificate, although it carries client use (to log in to a broker)", async (t) => {
  await refused(t, mixedIdentity(pki.dir, pki.agent('agent1'), 'agent'), /client certificate is an agent's certificate, not a client's/);
});

test("a broker's certificate works neither as a client certificate nor as an agent's", async (t) => {
  const issued = await distrun(['certs', 'broker', 'broker1', '--ip', '127.0.0.1', '--dir', pki.dir]);
  t.is(issued.code, 0, issued.stderr);
  const broker = join(pki.dir, 'brokers', 'broker1');
  await refused(t, mixedIdentity(pki.dir, broker, 'broker'), /client certificate is a broker's certificate, not a client's/);
  const fake = await startAgent(pki, 'agent1', { args: ['--cert', join(broker, 'broker.crt'), '--key', join(broker, 'broker.key')] });
  const r = await distrun([...at(fake), '--pki', pki.dir, 'echo', 'x']);
  t.is(r.code, 255);
  t.is(r.stdout.toString(), '');
  t.regex(r.stderr, /agent certificate is a broker's certificate, not an agent's; refusing to talk to it/);
});

test("a client's certificate does not work as an agent certificate", async (t) => {
  const fake = await startAgent(pki, 'agent1', {
    args: ['--cert', join(pki.dir, 'client.crt'), '--key', join(pki.dir, 'client.key')],
  });
  const r = await distrun([...at(fake), '--pki', pki.dir, 'echo', 'x']);
  t.is(r.code, 255);
  t.regex(r.stderr, /agent certificate is not issued for agent \(server\) use|does not name the address/);
});

test('an agent certificate from a foreign CA, or for another name, is refused by distrun', async (t) => {
  const foreign = await makePki([]);
  // Node's global switch for turning verification off must not work on distrun.
  const r = await distrun([...at(agent), '--pki', foreign.dir, 'true'], { env: { NODE_TLS_REJECT_UNAUTHORIZED: '0' } });
  t.is(r.code, 255);
  t.regex(r.stderr, /agent certificate is not issued by this fleet's CA; refusing to talk to it/);
  const wrongName = await distrun(['-H', `localhost:${agent.port}`, '--pki', pki.dir, 'true']);
  t.is(wrongName.code, 255);
  t.regex(wrongName.stderr, /does not name the address we dialled/);
});

test('a client without a certificate is refused at the handshake', async (t) => {
  const before = agent.logs.length;
  const frames = await new Promise<Frame[]>((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port: agent.port, ca: readFileSync(join(pki.dir, 'ca.crt')) });
    const decoder = new FrameDecoder();
    const got: Frame[] = [];
    socket.on('error', () => {});
    socket.on('close', () => resolve(got));
    socket.on('data', (c: Buffer) => got.push(...decoder.push(c)));
    socket.write(encodeVersionOffer({ versions: [1], software: 'anonymous' }));
  });
  // The only thing it hears is why: no version choice, nothing of the protocol.
  t.deepEqual(
    frames.map((f) => f.token),
    ['FAI'],
  );
  t.like(failureIn(frames), { code: 'E_AUTH', reason: "no client certificate: this agent requires one issued by the fleet's CA" });
  t.true(
    await waitFor(() =>
      agent.logs.slice(before).some((l) => l.msg === 'refused: no client certificate' && /^127\.0\.0\.1:\d+$/.test(String(l.peer))),
    ),
  );
  const empty = await distrun([...at(agent), '--pki', tempDir(), 'true']);
  t.is(empty.code, 255);
  t.regex(empty.stderr, /no usable client identity .*distrun certs init/);
  await assertStillServing(t, agent, pki.dir);
});

test('allowedClients: a name outside the list is refused, a wildcard match is served', async (t) => {
  const guarded = await startAgent(pki, 'agent1', { config: { allowedClients: ['ops-*', 'exact-name'] } });
  const issued = await distrun(['certs', 'client', 'ops-bot', '--dir', pki.dir]);
  t.is(issued.code, 0, issued.stderr);
  const r = await distrun([...at(guarded), '--pki', pki.dir, 'echo', 'x']);
  t.is(r.code, 255);
  t.regex(r.stderr, /client admin is not allowed on this agent/);
  t.true(guarded.logs.some((l) => l.msg === 'refused: client not in allowedClients' && l.client === 'admin'));
  const ok = await distrun([...at(guarded), '--pki', join(pki.dir, 'clients', 'ops-bot'), 'echo', 'welcome']);
  t.is(ok.stdout.toString(), '127.0.0.1: welcome\n', ok.stderr);
});

test('a revoked client is refused at the handshake; others are still served', async (t) => {
  const local = await makePki(['agent1']);
  t.is((await distrun(['certs', 'client', 'mallory', '--dir', local.dir])).code, 0);
  const revoke = await distrun(['certs', 'revoke', 'mallory', '--dir', local.dir]);
  t.is(revoke.code, 0, revoke.stderr);
  const guarded = await startAgent(local, 'agent1', { config: { crl: join(local.dir, 'crl.pem') } });
  const r = await distrun([...at(guarded), '--pki', join(local.dir, 'clients', 'mallory'), 'echo', 'x']);
  t.is(r.code, 255);
  t.regex(r.stderr, /client certificate has been revoked/);
  t.true(await waitFor(() => guarded.logs.some((l) => l.msg === 'refused: client certificate not accepted' && l.verifyError === 'CERT_REVOKED')));
  await assertStillServing(t, guarded, local.dir);
});

test('SIGHUP: a new CRL refuses a revoked client; its running session is not dropped; broken files keep the old state', async (t) => {
  const local = await makePki(['agent1']);
  t.is((await distrun(['certs', 'client', 'eve', '--dir', local.dir])).code, 0);
  const eve = join(local.dir, 'clients', 'eve');
  const guarded = await startAgent(local, 'agent1');
  const running = spawnDistrun([...at(guarded), '--pki', eve, 'sh', '-c', 'sleep 1.5; echo survived']);
  t.true(await waitFor(() => guarded.logs.some((l) => l.msg === 'command' && l.client === 'eve')));

  t.is((await distrun(['certs', 'revoke', 'eve', '--dir', local.dir])).code, 0);
  // The agent's own copy: distrun reads the PKI directory's crl.pem, which stays intact.
  const agentCrl = join(tempDir(), 'crl.pem');
  copyFileSync(join(local.dir, 'crl.pem'), agentCrl);
  writeAgentConfig(local, 'agent1', { crl: agentCrl }, guarded.configFile);
  const reloaded = await guarded.reload();
  t.is(reloaded.msg, 'reloaded');
  const refusedRun = await distrun([...at(guarded), '--pki', eve, 'echo', 'x']);
  t.is(refusedRun.code, 255);
  t.is(await running.exit, 0, `the session that was running finished normally: ${running.stderr()}`);

  // A half-written CRL: the reload fails, the agent keeps the previous material.
  const crl = readFileSync(agentCrl, 'utf8');
  writeFileSync(agentCrl, crl.slice(0, crl.length / 2));
  const failed = await guarded.reload();
  t.is(failed.msg, 'reload failed');
  t.regex(String(failed.reason), /crl/i);
  t.is((await distrun([...at(guarded), '--pki', eve, 'echo', 'x'])).code, 255, 'eve is still refused');
  await assertStillServing(t, guarded, local.dir);
});
