// Keepalives (protocol version 2) and the orphan reaper, on loopback: a peer that goes
// silent is given up on both sides, and commands do not outlive a killed agent.
// The same faults over real links are in netns-faults.test.ts.
import test from 'ava';
import { Keepalive } from '../src/protocol/keepalive.js';
import { decodeVersionChoice, encodeCommand, encodeVersionChoice, encodeVersionOffer } from '../src/protocol/messages.js';
import {
  cleanupAll,
  distrun,
  makePki,
  processesMatching,
  RUN_TOKEN,
  rawExchange,
  spawnDistrun,
  startAgent,
  waitFor,
  type Pki,
  type RunningAgent,
} from './helpers/fleet.js';

let pki: Pki;
let agent: RunningAgent;

test.before(async () => {
  pki = await makePki(['agent1']);
  agent = await startAgent(pki, 'agent1', { config: { keepaliveSeconds: 1, killGraceSeconds: 1 } });
});

test.after.always(cleanupAll);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const unique = () => 600 + Math.floor(Math.random() * 1000);

/** Sends `frames` over a raw TLS connection and never says anything more; resolves with all the agent sent. */
const silentClient = (frames: Buffer[]) => rawExchange(agent.port, pki.dir, frames);

test('Keepalive: sends every interval, gives up after 3 silent ones, and not while paused', async (t) => {
  let sent = 0;
  let lostAfter: number | undefined;
  const started = Date.now();
  const keepalive = new Keepalive(20, {
    send: () => {
      sent += 1;
    },
    lost: (limitMs) => {
      lostAfter = limitMs;
    },
  });
  keepalive.start();
  keepalive.pause();
  await sleep(150);
  t.is(lostAfter, undefined, 'silence while we do not read is not counted');
  t.true(sent >= 1);
  keepalive.resume();
  t.true(await waitFor(() => lostAfter !== undefined, 5000, 10));
  t.is(lostAfter, 60);
  t.true(Date.now() - started >= 150 + 60);
  const heard = new Keepalive(20, { send: () => {}, lost: () => t.fail('a peer that talks is not lost') });
  heard.start();
  const talking = setInterval(() => heard.heard(), 10);
  await sleep(150);
  clearInterval(talking);
  heard.stop();
});

test('VER: version 2 carries the keepalive interval; version 1 has none', (t) => {
  const v2 = decodeVersionChoice(encodeVersionChoice({ version: 2, software: 'a', keepaliveSeconds: 15 }).subarray(7));
  t.deepEqual(v2, { version: 2, software: 'a', keepaliveSeconds: 15 });
  const v1frame = encodeVersionChoice({ version: 1, software: 'a', keepaliveSeconds: 15 });
  t.deepEqual(JSON.parse(v1frame.subarray(7).toString()), { version: 1, software: 'a' });
  t.deepEqual(decodeVersionChoice(v1frame.subarray(7)), { version: 1, software: 'a', keepaliveSeconds: 0 });
  t.throws(() => decodeVersionChoice(Buffer.from('{"version":2,"software":"a"}')), { code: 'E_PROTOCOL', message: /keepalive/ });
  t.throws(() => decodeVersionChoice(Buffer.from('{"version":2,"software":"a","keepalive":1e9}')), { code: 'E_PROTOCOL' });
});

test('a version 2 client that goes silent is dropped after 3 keepalive intervals, and its command stopped', async (t) => {
  const n = unique();
  const since = agent.logs.length;
  const frames = await silentClient([
    encodeVersionOffer({ versions: [1, 2], software: 'silent' }),
    encodeCommand(['sh', '-c', `sleep $((${n} + 0)).${RUN_TOKEN}`]),
  ]);
  t.like(JSON.parse(frames[0]!.payload.toString()), { version: 2, keepalive: 1 });
  t.true(frames.filter((f) => f.token === 'KAL').length >= 2, frames.map((f) => f.token).join(' '));
  const lost = await agent.waitForLog('client lost; stopping command', since);
  t.is(lost.reason, 'client silent for 3 s (connection lost)');
  t.true(await waitFor(() => processesMatching(`sleep ${n}.${RUN_TOKEN}`).length === 0));
});

test('a version 1 client gets no keepalives and is not dropped for being quiet', async (t) => {
  const frames = await silentClient([encodeVersionOffer({ versions: [1], software: 'old' }), encodeCommand(['sh', '-c', 'sleep 4; echo done'])]);
  t.deepEqual(
    frames.map((f) => f.token),
    ['VER', 'OUT', 'EXT'],
  );
  t.is(frames[1]!.payload.toString(), 'done\n');
});

test('KAL from a version 1 client is a protocol error', async (t) => {
  const frames = await silentClient([
    encodeVersionOffer({ versions: [1], software: 'old' }),
    encodeCommand(['sleep', '5']),
    Buffer.from('KAL\0\0\0\0', 'latin1'),
  ]);
  const fai = frames.find((f) => f.token === 'FAI');
  t.like(JSON.parse(fai?.payload.toString() ?? '{}'), { code: 'E_PROTOCOL', reason: 'KAL needs protocol version 2' });
});

test('distrun gives up on an agent that stops answering (SIGSTOP), and the agent then stops the command', async (t) => {
  const n = unique();
  const stopped = await startAgent(pki, 'agent1', { config: { keepaliveSeconds: 1, killGraceSeconds: 1 } });
  const run = spawnDistrun(['-H', `127.0.0.1:${stopped.port}`, '--pki', pki.dir, 'sh', '-c', `sleep $((${n} + 0)).${RUN_TOKEN}`]);
  t.true(await waitFor(() => processesMatching(`sleep ${n}.${RUN_TOKEN}`).length > 0));
  stopped.process.kill('SIGSTOP');
  try {
    t.is(await run.exit, 255);
    t.regex(run.stderr(), /127\.0\.0\.1:\d+: connection lost: no word from the agent for 3 s \(host down or network cut\)/);
  } finally {
    stopped.process.kill('SIGCONT');
  }
  // Resumed, the agent finds the connection closed and stops the command.
  t.true(await waitFor(() => processesMatching(`sleep ${n}.${RUN_TOKEN}`).length === 0));
});

test('a quiet command with an attentive client is never dropped (keepalives flow both ways)', async (t) => {
  const r = await distrun(['-H', `127.0.0.1:${agent.port}`, '--pki', pki.dir, 'sh', '-c', 'sleep 5; echo awake']);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout.toString(), '127.0.0.1: awake\n');
});

test("an agent killed with SIGKILL: the reaper stops its commands' process groups, children included", async (t) => {
  const n = unique();
  const victim = await startAgent(pki, 'agent1');
  const run = spawnDistrun([
    '-H',
    `127.0.0.1:${victim.port}`,
    '--pki',
    pki.dir,
    'sh',
    '-c',
    `sleep $((${n} + 0)).${RUN_TOKEN} & sleep $((${n} + 1)).${RUN_TOKEN}; wait`,
  ]);
  t.true(await waitFor(() => processesMatching(`sleep ${n}.${RUN_TOKEN}`).length > 0 && processesMatching(`sleep ${n + 1}.${RUN_TOKEN}`).length > 0));
  victim.process.kill('SIGKILL');
  t.is(await run.exit, 255);
  t.true(await waitFor(() => processesMatching(`sleep ${n}.${RUN_TOKEN}`).length + processesMatching(`sleep ${n + 1}.${RUN_TOKEN}`).length === 0));
});
