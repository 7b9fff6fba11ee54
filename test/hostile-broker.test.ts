// Attacks from the broker itself. The broker here is a real nats-server that lets anyone
// do anything (TLS, no client certificates, no permissions): the test plays the
// compromised broker, or anyone holding its credentials, with its own NATS connection.
// What it records, replays, alters, misroutes or makes up must never run a command,
// never reach the wrong agent, and never pass for a host's output. Serial: the tests
// share the two agents, and one stops agent1.
import test from 'ava';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CarrierKind, decodeCarrier, encodeData, encodeOpen } from '../src/protocol/carrier.js';
import { freePorts, startNatsServer } from './helpers/broker.js';
import {
  addCleanup,
  cleanupAll,
  DISTRUN,
  distrun,
  distrunEnv,
  makePki,
  startAgent,
  tempDir,
  waitFor,
  type Pki,
  type RunningAgent,
} from './helpers/fleet.js';

let pki: Pki;
let url: string;
let insider: NatsConnection;
let agent1: RunningAgent;
let agent2: RunningAgent;

test.before(async () => {
  pki = await makePki(['agent1', 'agent2', 'agent3']);
  const issued = await distrun(['certs', 'broker', 'evil', '--ip', '127.0.0.1', '--dir', pki.dir]);
  if (issued.code !== 0) throw new Error(issued.stderr);
  const [port] = await freePorts(1);
  url = `127.0.0.1:${port}`;
  const bundle = join(pki.dir, 'brokers', 'evil');
  const config = join(tempDir(), 'open.conf');
  // TLS with a broker certificate of the fleet, but no client certificates and no permissions.
  writeFileSync(config, `listen: "${url}"\ntls { cert_file: "${join(bundle, 'broker.crt')}", key_file: "${join(bundle, 'broker.key')}" }\n`);
  await startNatsServer(['-c', config]);
  insider = await connect({
    servers: url,
    tls: { ca: readFileSync(join(pki.dir, 'ca.crt'), 'utf8'), checkServerIdentity: () => undefined } as object,
  });
  addCleanup(() => insider.close());
  [agent1, agent2] = await Promise.all([
    startAgent(pki, 'agent1', { config: { broker: { urls: [url] } } }),
    startAgent(pki, 'agent2', { config: { broker: { urls: [url] }, maxPendingConnections: 32, maxPendingConnectionsPerSource: 16 } }),
  ]);
});
test.after.always(cleanupAll);

const through = (...args: string[]) => ['--broker', url, '--pki', pki.dir, ...args];
const commandsLogged = (agent: RunningAgent) => agent.logs.filter((l) => l.msg === 'command').length;

interface Recorded {
  subject: string;
  data: Uint8Array;
}

/** Everything published on `subject` (wildcards allowed) from now on. */
function record(subject: string): { messages: Recorded[]; stop(): void } {
  const messages: Recorded[] = [];
  const sub = insider.subscribe(subject, {
    callback: (_err, msg) => {
      messages.push({ subject: msg.subject, data: new Uint8Array(msg.data) });
    },
  });
  return { messages, stop: () => sub.unsubscribe() };
}

test.serial('a recorded session played back to the agent runs nothing: its handshake cannot complete', async (t) => {
  const marker = join(tempDir(), 'ran');
  const tape = record('distrun.agent.agent1.>');
  const r = await distrun(through('-H', 'agent1', '--', 'sh', '-c', 'echo once >> "$0"', marker));
  t.is(r.code, 0, r.stderr);
  await insider.flush();
  tape.stop();
  t.true(tape.messages.length >= 2);
  const before = agent1.logs.length;
  const commands = commandsLogged(agent1);
  for (const m of tape.messages) insider.publish(m.subject, m.data);
  await insider.flush();
  t.true(await waitFor(() => agent1.logs.slice(before).some((l) => l.msg === 'tls handshake failed')), 'the agent refused the replayed handshake');
  t.is(readFileSync(marker, 'utf8'), 'once\n');
  t.is(commandsLogged(agent1), commands);
});

test.serial('bytes the broker slips into a live session end it on both sides; nothing of them reaches the command', async (t) => {
  const tape = record('distrun.agent.agent1.>');
  const child = spawn(process.execPath, [DISTRUN, ...through('-H', 'agent1', '-N', '-t', 'cat')], {
    env: distrunEnv(),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  addCleanup(() => {
    child.kill('SIGKILL');
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exit = new Promise<number | null>((resolve) => child.once('close', resolve));
  child.stdin.write('first line\n');
  t.true(await waitFor(() => stdout.includes('first line')), 'the session works');
  await insider.flush();
  // The next sequence number of the client's messages, and a made-up TLS record with it.
  const subject = tape.messages.at(-1)!.subject;
  const seq = tape.messages.filter((m) => m.subject === subject).length;
  insider.publish(subject, encodeData(seq, Buffer.from('\x17\x03\x03\x00\x20FORGED-INPUT-FORGED-INPUT-FORGED')));
  await insider.flush();
  const code = await exit;
  tape.stop();
  t.is(code, 255);
  t.notRegex(stdout, /FORGED/);
  t.regex(stderr, /agent1: the agent found data of this session altered on the way \(TLS record authentication failed\)/);
  t.true(await waitFor(() => agent1.logs.some((l) => l.msg === 'client disconnected; stopping command')), 'the agent stopped the command');
});

test.serial('a session for agent1 that the broker hands to agent2 is refused by distrun before anything is sent; agent2 runs nothing', async (t) => {
  // agent1 is not there; the broker forwards its sessions to agent2 and agent2's replies back.
  await agent1.stop();
  const toAgent = insider.subscribe('distrun.agent.agent1.>', {
    callback: (_e, m) => insider.publish(m.subject.replace('distrun.agent.agent1.', 'distrun.agent.agent2.'), m.data),
  });
  const fromAgent = insider.subscribe('distrun.client.*.*.agent2.>', {
    callback: (_e, m) => {
      const parts = m.subject.split('.');
      parts[4] = 'agent1';
      insider.publish(parts.join('.'), m.data);
    },
  });
  await insider.flush();
  const marker = join(tempDir(), 'touched');
  const commands = commandsLogged(agent2);
  const r = await distrun(through('-H', 'agent1', 'touch', marker));
  toAgent.unsubscribe();
  fromAgent.unsubscribe();
  t.is(r.code, 255);
  t.regex(r.stderr, /agent1: the agent that answered through the broker is not agent1 \(its certificate does not name it\); refusing to talk to it/);
  t.false(existsSync(marker));
  t.is(commandsLogged(agent2), commands);
});

test.serial('a client certificate from another CA, through the broker, is refused by the agent as directly', async (t) => {
  const foreign = await makePki([]);
  const identity = join(tempDir(), 'identity');
  mkdirSync(identity);
  copyFileSync(join(pki.dir, 'ca.crt'), join(identity, 'ca.crt'));
  copyFileSync(join(foreign.dir, 'client.crt'), join(identity, 'client.crt'));
  copyFileSync(join(foreign.dir, 'client.key'), join(identity, 'client.key'));
  const commands = commandsLogged(agent2);
  const r = await distrun(['--broker', url, '--pki', identity, '-H', 'agent2', 'echo', 'should-not-run']);
  t.is(r.code, 255);
  t.is(r.stdout.toString(), '');
  t.regex(r.stderr, /client certificate is not issued by this fleet's CA/);
  t.is(commandsLogged(agent2), commands);
});

test.serial(
  'made-up carrier messages: oversized data, a message for no session, a flood of openings; the agent answers with RESET and keeps serving',
  async (t) => {
    const replies = record('distrun.client.mallory.>');
    const session = (id: string) => `distrun.agent.agent2.mallory.runrunrun1.${id}`;
    // An OPEN, then DATA larger than a carrier message may be.
    insider.publish(session('oversized1'), encodeOpen(0, 65536, Buffer.alloc(0)));
    insider.publish(session('oversized1'), Buffer.concat([Buffer.from([CarrierKind.DATA, 0, 0, 0, 1]), Buffer.alloc(40_000)]));
    // DATA for a session that was never opened.
    insider.publish(session('neveropen1'), encodeData(5, Buffer.from('hello')));
    await insider.flush();
    const reasons = () => replies.messages.map((m) => ({ subject: m.subject, message: decodeCarrier(m.data) }));
    const resetOf = (id: string) => reasons().find((r) => r.subject.endsWith(id) && r.message.kind === CarrierKind.RESET)?.message;
    t.true(await waitFor(() => resetOf('oversized1') !== undefined && resetOf('neveropen1') !== undefined));
    t.regex((resetOf('oversized1') as { reason: string }).reason, /carrier DATA of 40000 bytes \(1 to 32768\)/);
    t.regex(
      (resetOf('neveropen1') as { reason: string }).reason,
      /the agent no longer has this session \(it restarted, or lost its broker connection\)/,
    );
    // 500 openings that never finish a handshake: only so many are held at once.
    const before = agent2.logs.length;
    for (let i = 0; i < 500; i++) insider.publish(session(`flood${String(i).padStart(6, '0')}`), encodeOpen(0, 65536, Buffer.alloc(0)));
    await insider.flush();
    t.true(await waitFor(() => agent2.logs.slice(before).some((l) => l.msg === 'dropped a connection: too many not yet in a session')));
    replies.stop();
    const r = await distrun(through('-H', 'agent2', 'echo', 'still here'));
    t.is(r.code, 0, r.stderr);
    t.is(r.stdout.toString(), 'agent2: still here\n');
  },
);

test.serial(
  'a session through the broker leaves the connection gate when it starts: more running sessions than its per-client bound all finish',
  async (t) => {
    // agent2 holds at most 16 not-yet-sessions per client; 20 commands run at once.
    const mark = agent2.logs.length;
    const runs = await Promise.all(Array.from({ length: 20 }, (_, i) => distrun(through('-H', 'agent2', '--', 'sh', '-c', `sleep 3; echo ${i}`))));
    t.false(agent2.logs.slice(mark).some((l) => l.msg === 'dropped a connection: too many not yet in a session'));
    t.deepEqual(
      runs.map((r) => r.code),
      runs.map(() => 0),
      runs.map((r) => r.stderr).join(''),
    );
    t.deepEqual(
      runs.map((r) => r.stdout.toString()),
      runs.map((_, i) => `agent2: ${i}\n`),
    );
  },
);

test.serial('an opening whose handshake never completes is ended by the agent after its handshake timeout, and the client hears why', async (t) => {
  await startAgent(pki, 'agent3', { config: { broker: { urls: [url] }, handshakeTimeoutSeconds: 1 } });
  // This session's replies only: sessions of earlier tests as mallory end on their own timeouts.
  const replies = record('distrun.client.mallory.runrunrun2.agent3.stalled001');
  // An OPEN with no ClientHello, then nothing: the agent's TLS server waits, then gives up.
  insider.publish('distrun.agent.agent3.mallory.runrunrun2.stalled001', encodeOpen(0, 65536, Buffer.alloc(0)));
  await insider.flush();
  const reset = () => replies.messages.map((m) => decodeCarrier(m.data)).find((m) => m.kind === CarrierKind.RESET) as { reason: string } | undefined;
  t.true(await waitFor(() => reset() !== undefined));
  replies.stop();
  t.is(reset()?.reason, 'the agent ended the TLS handshake: not complete within 1 s (the client was too slow)');
});
