// The broker carrier (broker/carrier-stream.ts) between two in-memory ends, with real
// node:tls on top: order, windows, ends and resets, and what a peer that breaks the
// rules gets. The broker itself is replaced by a queue here; test/broker.test.ts runs
// the same streams through a real nats-server cluster.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { once } from 'node:events';
import * as tls from 'node:tls';
import { CarrierError, CarrierStream } from '../src/broker/carrier-stream.js';
import {
  CarrierKind,
  decodeCarrier,
  discoveryAnswerSubject,
  discoverySubject,
  encodeData,
  encodeOpen,
  MAX_CARRIER_DATA,
  nameOfToken,
  parseClientSubject,
  parseDiscoverySubject,
} from '../src/protocol/carrier.js';
import { AnswerBudget } from '../src/agent/broker-service.js';
import { cleanupAll, makePki, type Pki } from './helpers/fleet.js';

test.after.always(cleanupAll);

interface Pair {
  client: CarrierStream;
  agent: CarrierStream;
  /** Every message each way, as sent. */
  toAgent: Buffer[];
  toClient: Buffer[];
  /** Messages sit in these queues until deliver() (a broker that is slow to forward). */
  deliver(): void;
  /** Hand messages over as they come (setImmediate, like a socket). */
  flowing(): void;
}

function pair(window = 64 * 1024): Pair {
  const toAgent: Buffer[] = [];
  const toClient: Buffer[] = [];
  let queuedA: Buffer[] = [];
  let queuedC: Buffer[] = [];
  let auto = false;
  const schedule = (): void => {
    if (auto) setImmediate(deliver);
  };
  const client = new CarrierStream({ window, opens: true, remoteAddress: 'agent', send: (m) => (toAgent.push(m), queuedA.push(m), schedule()) });
  const agent = new CarrierStream({ window, opens: false, remoteAddress: 'client', send: (m) => (toClient.push(m), queuedC.push(m), schedule()) });
  function deliver(): void {
    const [a, c] = [queuedA, queuedC];
    queuedA = [];
    queuedC = [];
    for (const m of a) agent.receive(m);
    for (const m of c) client.receive(m);
  }
  return {
    client,
    agent,
    toAgent,
    toClient,
    deliver,
    flowing: () => {
      auto = true;
      schedule();
    },
  };
}

const kinds = (messages: Buffer[]) => messages.map((m) => String.fromCharCode(m[0]!));

test('bytes arrive in order both ways; END is a half close; a clean end sends no RESET', async (t) => {
  const p = pair();
  p.flowing();
  const fromClient: Buffer[] = [];
  p.agent.on('data', (c: Buffer) => fromClient.push(c));
  p.client.write('hello ');
  p.client.write('agent');
  p.client.end();
  await once(p.agent, 'end');
  t.is(Buffer.concat(fromClient).toString(), 'hello agent');
  // The agent can still answer after the client's END.
  const fromAgent: Buffer[] = [];
  p.client.on('data', (c: Buffer) => fromAgent.push(c));
  p.agent.end('bye');
  await once(p.client, 'end');
  t.is(Buffer.concat(fromAgent).toString(), 'bye');
  p.client.destroy();
  p.agent.destroy();
  await new Promise((r) => setImmediate(r));
  t.deepEqual(kinds(p.toAgent), ['O', 'D', 'E']);
  t.deepEqual(kinds(p.toClient), ['O', 'E']);
});

test('a slow reader: the sender never has more than the window in flight, and everything arrives', async (t) => {
  const window = 64 * 1024;
  const p = pair(window);
  const total = 4 * 1024 * 1024;
  const payload = Buffer.alloc(total);
  for (let i = 0; i < total; i++) payload[i] = (i * 7) & 0xff;
  const received: Buffer[] = [];
  let most = 0;
  p.agent.pause();
  p.client.end(payload);
  // Deliver by hand: the agent side buffers what arrives and reads only now and then.
  let rounds = 0;
  while (Buffer.concat(received).length < total && rounds < 100_000) {
    rounds += 1;
    p.deliver();
    most = Math.max(most, p.agent.readableLength);
    let chunk: Buffer | null;
    if (rounds % 3 === 0) while ((chunk = p.agent.read() as Buffer | null) !== null) received.push(chunk);
    await new Promise((r) => setImmediate(r));
  }
  t.true(Buffer.concat(received).equals(payload));
  t.true(most <= window, `the reader's buffer held ${most} bytes, window ${window}`);
  t.true(most > 0);
  // Replay the messages in order: bytes sent never ran more than a window ahead of the grants.
  let sent = 0;
  let granted = window;
  const grants = p.toClient.map((m) => decodeCarrier(m)).filter((m) => m.kind === CarrierKind.WINDOW);
  t.true(grants.length >= total / window, `${grants.length} grants`);
  for (const m of p.toAgent.map((x) => decodeCarrier(x))) {
    if (m.kind === CarrierKind.DATA || m.kind === CarrierKind.OPEN) sent += m.data.length;
    while (sent > granted && grants.length > 0) granted += grants.shift()!.grant;
    t.true(sent <= granted, `${sent} bytes sent with ${granted} granted`);
  }
  t.is(sent, total);
  p.agent.destroy();
  p.client.destroy();
});

test('a gap in the sequence ends the session on both sides, with the reason', async (t) => {
  const p = pair();
  p.client.write('first');
  p.deliver();
  const agentError = once(p.agent, 'error');
  // Message #2 where #1 was due: one went missing in the broker.
  p.agent.receive(encodeData(2, Buffer.from('late')));
  const [err] = (await agentError) as [Error];
  t.regex(err.message, /messages lost or out of order on the way through the broker \(got #2, expected #1\)/);
  const clientError = once(p.client, 'error');
  p.deliver();
  const [told] = (await clientError) as [CarrierError];
  t.true(told instanceof CarrierError && told.byPeer);
  t.regex(told.message, /messages lost or out of order/);
});

test('a peer that sends past its window, a second OPEN, or garbage is cut off', async (t) => {
  for (const [name, messages, reason] of [
    [
      'past the window',
      [
        encodeOpen(0, 65536, Buffer.alloc(0)),
        encodeData(1, Buffer.alloc(MAX_CARRIER_DATA)),
        encodeData(2, Buffer.alloc(MAX_CARRIER_DATA)),
        encodeData(3, Buffer.alloc(1)),
      ],
      /sent 1 bytes with 0 left in its window/,
    ],
    ['a second OPEN', [encodeOpen(0, 65536, Buffer.alloc(0)), encodeOpen(1, 65536, Buffer.alloc(0))], /opened only once/],
    ['data before OPEN', [encodeData(0, Buffer.from('x'))], /first message of a session must open it/],
    ['an unknown kind', [Buffer.from([0x5a, 0, 0, 0, 0])], /unknown carrier message kind 0x5a/],
    ['a short message', [Buffer.from([0x44, 0])], /too short/],
  ] as const) {
    const sent: Buffer[] = [];
    const agent = new CarrierStream({ window: 65536, opens: false, remoteAddress: 'x', send: (m) => sent.push(m) });
    agent.resume();
    const failed = once(agent, 'error');
    for (const m of messages) agent.receive(m);
    const [err] = (await failed) as [Error];
    t.regex(err.message, reason, name);
    t.is(sent.at(-1)?.[0], CarrierKind.RESET, `${name}: the peer hears it`);
  }
});

test('fail(): the other side hears the reason; nothing more is sent after a reset', async (t) => {
  const p = pair();
  p.flowing();
  p.client.write('x');
  await once(p.agent, 'data');
  const told = once(p.client, 'error');
  const own = once(p.agent, 'error');
  p.agent.fail('the agent lost its broker connection');
  t.regex(((await own) as [Error])[0].message, /lost its broker connection/);
  const [err] = (await told) as [Error];
  t.is(err.message, 'the agent lost its broker connection');
  const count = p.toClient.length;
  p.agent.write('more');
  await new Promise((r) => setImmediate(r));
  t.is(p.toClient.length, count);
});

let pki: Pki;
test.before(async () => {
  pki = await makePki(['agent1']);
});

test('mutual TLS 1.3 runs end to end over the carrier: each side sees the other certificate; bytes round-trip', async (t) => {
  const read = (...parts: string[]) => readFileSync(join(...parts));
  const p = pair();
  p.flowing();
  const server = tls.createServer({
    cert: read(pki.agent('agent1'), 'agent.crt'),
    key: read(pki.agent('agent1'), 'agent.key'),
    ca: read(pki.dir, 'ca.crt'),
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.3',
  });
  const served = new Promise<{ client: string; got: string }>((resolve) => {
    server.on('secureConnection', (socket) => {
      let got = '';
      socket.on('data', (c: Buffer) => {
        got += c.toString();
        if (got.endsWith('\n')) socket.end(`echo ${got}`);
      });
      socket.on('end', () => resolve({ client: String(socket.getPeerCertificate().subject.CN), got }));
    });
  });
  // The agent's listener takes the carrier as it takes a TCP connection.
  server.emit('connection', p.agent);
  const socket = tls.connect({
    socket: p.client,
    servername: 'agent1',
    checkServerIdentity: () => undefined,
    ca: read(pki.dir, 'ca.crt'),
    cert: read(pki.dir, 'client.crt'),
    key: read(pki.dir, 'client.key'),
    minVersion: 'TLSv1.3',
  });
  await once(socket, 'secureConnect');
  t.is(socket.getProtocol(), 'TLSv1.3');
  t.is(socket.getPeerCertificate().subject.CN, 'agent1');
  socket.write('ping\n');
  let answer = '';
  socket.on('data', (c: Buffer) => (answer += c.toString()));
  await once(socket, 'end');
  socket.end();
  t.is(answer, 'echo ping\n');
  t.deepEqual(await served, { client: 'admin', got: 'ping\n' });
  // The broker saw only TLS records: not a byte of the text.
  t.false(Buffer.concat([...p.toAgent, ...p.toClient]).includes('ping'));
  server.close();
});

test('discovery subjects: a request names its client and run, an answer comes to that run inbox by name', (t) => {
  const request = discoverySubject('ops.example.com', 'run-0123456789');
  t.is(request, 'distrun.discover.ops~example~com.run-0123456789');
  const parsed = parseDiscoverySubject(request);
  t.deepEqual(parsed, { clientToken: 'ops~example~com', run: 'run-0123456789' });
  const answer = discoveryAnswerSubject(parsed, 'Web1.example.com');
  t.is(answer, 'distrun.client.ops~example~com.run-0123456789.web1~example~com.discover');
  t.is(nameOfToken(parseClientSubject(answer).agentToken), 'web1.example.com');
  // What a client could put in a request subject that an agent must not answer to.
  for (const bad of [
    'distrun.discover.ops.short',
    'distrun.discover.ops.run-0123456789.more',
    'distrun.discover.*.run-0123456789',
    'distrun.discover.OPS.run-0123456789',
    'distrun.agent.ops.run-0123456789',
    'distrun.discover..run-0123456789',
  ]) {
    t.throws(() => parseDiscoverySubject(bad), undefined, bad);
  }
});

test("the agent's discovery budget: a burst, then one a second, whatever the rate of requests", (t) => {
  const budget = new AnswerBudget(3, 1, 0);
  const answered = (at: number, times: number) => Array.from({ length: times }, () => budget.take(at)).filter(Boolean).length;
  t.is(answered(0, 10), 3);
  t.is(answered(500, 10), 0);
  t.is(answered(1000, 10), 1);
  t.is(answered(1000, 10), 0);
  t.is(answered(60_000, 10), 3, 'refilled up to the burst, not beyond');
});
