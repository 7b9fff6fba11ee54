// AgentSession driven in memory: frames in through one end of a duplex pair, frames out
// of the other, a fake peer identity and a recording audit sink. No TLS, no agent
// process, no sleeps; only the commands that are run are real processes. The same rules
// over real connections are in hostile-protocol.test.ts and daemon.test.ts.
import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeCopyRequest, encodeEntry, encodeEntryNumber, encodeFetchRequest } from '../src/protocol/file-messages.js';
import { cleanupAll, tempDir } from './helpers/fleet.js';
import type { AuditRecord, AuditSink } from '../src/agent/audit.js';
import { memoryAgent, type MemoryAgentSetup } from './helpers/memory-agent.js';
import { agentUser } from '../src/agent/local-users.js';
import { PendingMemory } from '../src/agent/pending-memory.js';
import { AgentToken, ClientToken, FileToken } from '../src/protocol/constants.js';
import { FrameDecoder, type Frame } from '../src/protocol/frame-decoder.js';
import {
  decodeExit,
  decodeFailure,
  decodeVersionChoice,
  defaultSessionOptions,
  encodeCommand,
  encodeFrame,
  encodeOptions,
  encodeVersionOffer,
  type Failure,
  type SessionOptions,
} from '../src/protocol/messages.js';

/** One session over an in-memory pair; `ended` resolves once the agent has closed its side and the client closed back. */
function openSession(setup: MemoryAgentSetup = {}) {
  const { session, clientSide, records, released } = memoryAgent(setup);
  const decoder = new FrameDecoder();
  const frames: Frame[] = [];
  clientSide.on('data', (chunk: Buffer) => frames.push(...decoder.push(chunk)));
  // A client closes its side once the agent has closed its own.
  clientSide.once('end', () => clientSide.end());
  const ended = released.then(() => frames);
  const send = (...bytes: Buffer[]): void => {
    clientSide.write(Buffer.concat(bytes));
  };
  return { session, send, frames, records, ended };
}

const offer = (...versions: number[]): Buffer => encodeVersionOffer({ versions, software: 'distrun/test' });
const options = (wanted: Partial<SessionOptions>): Buffer[] => encodeOptions({ ...defaultSessionOptions(), ...wanted });
const tokensOf = (frames: Frame[]): string[] => frames.map((f) => f.token);

function failureOf(frames: Frame[]): Failure | undefined {
  const frame = frames.find((f) => f.token === AgentToken.FAILURE);
  return frame && decodeFailure(frame.payload);
}

test('CMD before VER is refused (E_PROTOCOL) and nothing is audited', async (t) => {
  const { send, ended, records } = openSession();
  send(encodeCommand(['true']));
  const frames = await ended;
  t.deepEqual(tokensOf(frames), [AgentToken.FAILURE]);
  t.deepEqual(failureOf(frames), { code: 'E_PROTOCOL', reason: 'expected VER first, got CMD' });
  t.deepEqual(records, []);
});

test('a bad frame ends only its own session; another one on the same agent goes on', async (t) => {
  const memory = new PendingMemory(1024 * 1024);
  const bad = openSession({ memory });
  const good = openSession({ memory });
  good.send(offer(4));
  bad.send(offer(4), Buffer.from('a\x00b\x00\x00\x00\x00'));
  t.like(failureOf(await bad.ended), { code: 'E_PROTOCOL', reason: 'malformed frame token "a\\u0000b"' });
  t.is(good.frames.length, 1, 'the other session has only its VER so far');
  good.send(encodeFrame(ClientToken.PING));
  t.deepEqual(tokensOf(await good.ended), [AgentToken.VERSION, AgentToken.PONG]);
  t.is(memory.bytesUsed, 0, 'neither session holds any of the agent-wide budget');
});

test('a command the policy does not allow gets E_DENIED and a denied audit record', async (t) => {
  const { send, ended, records } = openSession({ config: { policy: [{ clients: ['admin'], commands: ['uptime'], shell: false }] } });
  send(offer(4), encodeCommand(['rm', '-rf', '/tmp/x']));
  const frames = await ended;
  t.deepEqual(tokensOf(frames), [AgentToken.VERSION, AgentToken.FAILURE]);
  t.deepEqual(failureOf(frames), { code: 'E_DENIED', reason: 'command "rm" is not allowed for this client' });
  t.is(records.length, 1);
  const { id, ...record } = records[0]!;
  t.regex(id, /^[0-9a-f-]{36}$/);
  t.deepEqual(record, {
    event: 'denied',
    session: 7,
    client: { name: 'admin', serial: '0a1b', fingerprint: 'AB:CD' },
    peer: '192.0.2.7:40000',
    argv: ['rm', '-rf', '/tmp/x'],
    shell: false,
    cwd: undefined,
    envNames: [],
    pty: false,
    reason: 'command "rm" is not allowed for this client',
  });
});

test('a variable that changes how programs load is refused whatever the policy', async (t) => {
  const { send, ended, records } = openSession();
  send(offer(4), ...options({ env: { LD_PRELOAD: '/tmp/x.so' } }), encodeCommand(['true']));
  const failure = failureOf(await ended);
  t.is(failure?.code, 'E_DENIED');
  t.regex(failure?.reason ?? '', /^--env LD_PRELOAD is refused: /);
  t.like(records[0], { event: 'denied', envNames: ['LD_PRELOAD'] });
});

test('a short command: VER, its output in OUT, EXT; start and end records share an id', async (t) => {
  const { send, ended, records } = openSession();
  send(offer(1, 2, 3, 4), encodeCommand(['echo', 'hello', 'world']));
  const frames = await ended;
  const tokens = tokensOf(frames);
  t.is(tokens[0], AgentToken.VERSION);
  t.is(tokens.at(-1), AgentToken.EXIT);
  t.true(
    tokens.slice(1, -1).every((token) => token === AgentToken.STDOUT),
    tokens.join(' '),
  );
  t.like(decodeVersionChoice(frames[0]!.payload), { version: 4, software: 'distrunner-agent/test', keepaliveSeconds: 15 });
  const output = Buffer.concat(frames.filter((f) => f.token === AgentToken.STDOUT).map((f) => f.payload)).toString();
  t.is(output, 'hello world\n');
  t.deepEqual(decodeExit(frames.at(-1)!.payload), { code: 0, timedOut: false });
  t.deepEqual(
    records.map((r) => r.event),
    ['start', 'end'],
  );
  const [start, end] = records as [AuditRecord, AuditRecord];
  t.is(start.id, end.id);
  t.like(start, { session: 7, argv: ['echo', 'hello', 'world'], shell: false, envNames: [], runAs: agentUser().name, pty: false });
  t.like(end, { exit: { code: 0, timedOut: false }, bytesIn: 0, bytesOut: 12, bytesErr: 0, reason: undefined });
});

test('stdin in INP frames reaches the command; EOF closes it', async (t) => {
  const { send, ended } = openSession();
  send(
    offer(4),
    ...options({ stdin: true }),
    encodeCommand(['cat']),
    encodeFrame(ClientToken.INPUT, 'typed\n'),
    encodeFrame(ClientToken.END_OF_INPUT),
  );
  const frames = await ended;
  t.is(Buffer.concat(frames.filter((f) => f.token === AgentToken.STDOUT).map((f) => f.payload)).toString(), 'typed\n');
  t.deepEqual(decodeExit(frames.at(-1)!.payload), { code: 0, timedOut: false });
});

test('stdin in many INP frames of all sizes reaches the command whole and in order (batched writes)', async (t) => {
  const { send, ended } = openSession();
  const pieces = Array.from({ length: 200 }, (_, i) => randomBytes((i * 7919) % 70_000));
  send(
    offer(4),
    ...options({ stdin: true }),
    encodeCommand(['sha256sum']),
    ...pieces.map((p) => encodeFrame(ClientToken.INPUT, p)),
    encodeFrame(ClientToken.END_OF_INPUT),
  );
  const frames = await ended;
  const out = Buffer.concat(frames.filter((f) => f.token === AgentToken.STDOUT).map((f) => f.payload)).toString();
  t.is(out.split(' ')[0], createHash('sha256').update(Buffer.concat(pieces)).digest('hex'));
  t.deepEqual(decodeExit(frames.at(-1)!.payload), { code: 0, timedOut: false });
});

test('keepalives: KAL is taken from version 2 on, and refused in a version 1 session', async (t) => {
  const v2 = openSession();
  v2.send(offer(2), encodeFrame(ClientToken.KEEPALIVE), encodeFrame(ClientToken.KEEPALIVE), encodeFrame(ClientToken.PING));
  t.deepEqual(tokensOf(await v2.ended), [AgentToken.VERSION, AgentToken.PONG]);
  const v1 = openSession();
  v1.send(offer(1), encodeFrame(ClientToken.KEEPALIVE));
  const frames = await v1.ended;
  t.deepEqual(decodeVersionChoice(frames[0]!.payload), { version: 1, software: 'distrunner-agent/test', keepaliveSeconds: 0 });
  t.deepEqual(failureOf(frames), { code: 'E_PROTOCOL', reason: 'KAL needs protocol version 2' });
});

test('with a token required: CMD without AUT is E_AUTH, a wrong token is E_AUTH, the right one passes', async (t) => {
  const missing = openSession({ token: 'sesame' });
  missing.send(offer(4), encodeCommand(['true']));
  t.deepEqual(failureOf(await missing.ended), { code: 'E_AUTH', reason: 'this agent requires an authentication token' });
  const wrong = openSession({ token: 'sesame' });
  wrong.send(offer(4), encodeFrame(ClientToken.AUTH, 'sesam'));
  t.deepEqual(failureOf(await wrong.ended), { code: 'E_AUTH', reason: 'authentication token rejected' });
  const right = openSession({ token: 'sesame' });
  right.send(offer(4), encodeFrame(ClientToken.AUTH, 'sesame'), encodeFrame(ClientToken.PING));
  t.deepEqual(tokensOf(await right.ended), [AgentToken.VERSION, AgentToken.PONG]);
  t.deepEqual([...missing.records, ...wrong.records, ...right.records], []);
});

test('version rules: no common version is E_VERSION; pty needs version 3', async (t) => {
  const none = openSession();
  none.send(offer(0, 99));
  t.deepEqual(failureOf(await none.ended), { code: 'E_VERSION', reason: 'client speaks protocol 0, 99; this agent speaks 1, 2, 3, 4, 5' });
  const early = openSession();
  early.send(offer(2), ...options({ pty: { cols: 80, rows: 24 } }), encodeCommand(['true']));
  t.deepEqual(failureOf(await early.ended), { code: 'E_PROTOCOL', reason: 'options pty and term need protocol version 3' });
});

test('a command whose start cannot be audited does not run (E_AUDIT)', async (t) => {
  const full: AuditSink = {
    write: () => {
      throw new Error('disk full');
    },
  };
  const { send, ended } = openSession({ audit: full });
  send(offer(4), encodeCommand(['echo', 'never']));
  const frames = await ended;
  t.deepEqual(tokensOf(frames), [AgentToken.VERSION, AgentToken.FAILURE]);
  t.deepEqual(failureOf(frames), { code: 'E_AUDIT', reason: 'the agent cannot write its audit log; commands are refused' });
});

test.after.always(cleanupAll);

const put = (dest: string): Buffer => encodeCopyRequest({ dest, sources: 1, preserve: false, backup: false });

test('PUT: refused before protocol 5, without the stdin option, and by a policy without copy paths (audited as denied)', async (t) => {
  const old = openSession();
  old.send(offer(4), ...options({ stdin: true }), put('/tmp'));
  t.deepEqual(failureOf(await old.ended), { code: 'E_PROTOCOL', reason: 'PUT needs protocol version 5' });
  const noStdin = openSession();
  noStdin.send(offer(5), put('/tmp'));
  t.deepEqual(failureOf(await noStdin.ended), { code: 'E_PROTOCOL', reason: 'PUT needs the stdin option (the file stream travels there)' });
  const policy = openSession({ config: { policy: [{ clients: ['admin'], commands: ['uptime'], shell: false }] } });
  policy.send(offer(5), ...options({ stdin: true }), put('/etc'));
  t.deepEqual(failureOf(await policy.ended), { code: 'E_DENIED', reason: 'copying files is not allowed for this client' });
  t.like(policy.records, [{ event: 'denied', copy: { dest: '/etc', sources: 1 }, reason: 'copying files is not allowed for this client' }]);
});

const get = (paths: string[]): Buffer => encodeFetchRequest({ paths, recursive: false, maxBytes: 1024 });

test('GET: refused before protocol 5, with the stdin option, and by a policy without fetch paths (audited as denied)', async (t) => {
  const old = openSession();
  old.send(offer(4), get(['/etc/hostname']));
  t.deepEqual(failureOf(await old.ended), { code: 'E_PROTOCOL', reason: 'GET needs protocol version 5' });
  const stdin = openSession();
  stdin.send(offer(5), ...options({ stdin: true }), get(['/etc/hostname']));
  t.deepEqual(failureOf(await stdin.ended), { code: 'E_PROTOCOL', reason: 'GET takes no stdin option' });
  const policy = openSession({ config: { policy: [{ clients: ['admin'], commands: ['uptime'], shell: false, copy: ['/srv/*'] }] } });
  policy.send(offer(5), get(['/etc/shadow']));
  t.deepEqual(failureOf(await policy.ended), { code: 'E_DENIED', reason: 'fetching files is not allowed for this client' });
  t.like(policy.records, [{ event: 'denied', fetch: { paths: ['/etc/shadow'] }, reason: 'fetching files is not allowed for this client' }]);
});

test('PUT runs the file receiver: WNT, the data, FIL; start, one file record and end share an id; nothing of the content is audited', async (t) => {
  const dest = tempDir();
  const { send, ended, records } = openSession();
  const content = Buffer.from('secret content\n');
  const sha256 = createHash('sha256').update(content).digest('hex');
  const stream = Buffer.concat([
    encodeEntry({ i: 0, path: 'f.txt', type: 'file', mode: 0o600, size: content.length, sha256 }),
    encodeFrame(FileToken.DATA, content),
    encodeEntryNumber(FileToken.END, 0),
  ]);
  // The whole stream at once: the receiver asks for the data, which is already there.
  send(offer(5), ...options({ stdin: true, stderr: true }), put(dest), encodeFrame(ClientToken.INPUT, stream), encodeFrame(ClientToken.END_OF_INPUT));
  const frames = await ended;
  t.deepEqual(decodeExit(frames.at(-1)!.payload), { code: 0, timedOut: false });
  const answers = new FrameDecoder().push(Buffer.concat(frames.filter((f) => f.token === AgentToken.STDOUT).map((f) => f.payload)));
  t.deepEqual(
    answers.map((f) => f.token),
    [FileToken.TEMP, FileToken.WANT, FileToken.RESULT],
  );
  t.is(readFileSync(join(dest, 'f.txt'), 'utf8'), 'secret content\n');
  t.deepEqual(
    records.map((r) => r.event),
    ['start', 'file', 'end'],
  );
  t.like(records[0], { copy: { dest, sources: 1, preserve: false, backup: false }, argv: [] });
  t.like(records[1], { id: records[0]!.id, path: join(dest, 'f.txt'), outcome: 'changed', size: content.length, sha256, previous: null });
  t.false(JSON.stringify(records).includes('secret content'));
});

test('GET runs the file sender: ENT, DAT, END in OUT; start, a file record per entry (sent, or failed) and end share an id; no content audited', async (t) => {
  const dir = tempDir();
  writeFileSync(join(dir, 'f.txt'), 'secret content\n');
  const { send, ended, records } = openSession();
  send(offer(5), ...options({ stderr: true }), get([join(dir, 'f.txt'), join(dir, 'missing')]));
  const frames = await ended;
  t.deepEqual(decodeExit(frames.at(-1)!.payload), { code: 1, timedOut: false });
  const stream = new FrameDecoder().push(Buffer.concat(frames.filter((f) => f.token === AgentToken.STDOUT).map((f) => f.payload)));
  t.deepEqual(
    stream.map((f) => f.token),
    [FileToken.ENTRY, FileToken.DATA, FileToken.END, FileToken.RESULT],
  );
  t.is(stream[1]!.payload.toString(), 'secret content\n');
  t.deepEqual(
    records.map((r) => r.event),
    ['start', 'file', 'file', 'end'],
  );
  const sha256 = createHash('sha256').update('secret content\n').digest('hex');
  t.like(records[0], { fetch: { paths: [join(dir, 'f.txt'), join(dir, 'missing')], recursive: false, maxBytes: 1024 }, argv: [] });
  t.like(records[1], { id: records[0]!.id, path: join(dir, 'f.txt'), outcome: 'sent', size: 15, sha256 });
  t.like(records[2], { id: records[0]!.id, path: join(dir, 'missing'), outcome: 'failed', reason: 'no such file or directory' });
  t.false(JSON.stringify(records).includes('secret content'));
});
