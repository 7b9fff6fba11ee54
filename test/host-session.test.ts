// HostSession, the client's protocol rules, driven in memory through a Transport: a
// scripted agent for every way a session can end, and a real AgentSession over a duplex
// pair for the two sides' rules together. No TLS, no sockets; the same over real
// connections is in run.test.ts, hostile-tls.test.ts and netns-faults.test.ts.
import test from 'ava';
import type { Duplex } from 'node:stream';
import { ErrorCodes } from '../src/errors.js';
import { AgentToken, ClientToken, SUPPORTED_VERSIONS } from '../src/protocol/constants.js';
import { FrameDecoder, type Frame } from '../src/protocol/frame-decoder.js';
import {
  decodeCommand,
  decodeVersionOffer,
  defaultSessionOptions,
  encodeExit,
  encodeFailure,
  encodeFrame,
  encodePong,
  encodeVersionChoice,
  type SessionOptions,
} from '../src/protocol/messages.js';
import { HostSession, type RunRequest } from '../src/cli/execution/host-session.js';
import type { ConnectionProblem, Transport, TransportHandlers } from '../src/cli/execution/transport.js';
import { memoryAgent } from './helpers/memory-agent.js';
import { target } from './helpers/fake-session.js';

const EXPIRES = new Date('2030-01-01T00:00:00Z');

/** A transport the test plays the agent on: it records what the session writes and delivers what the test says. */
class ScriptedTransport implements Transport {
  handlers: TransportHandlers | undefined;
  readonly written: Frame[] = [];
  readonly calls: string[] = [];
  readonly failures: { err: Error; agentAnswered: boolean }[] = [];
  destroyed = false;
  private readonly decoder = new FrameDecoder();

  open(handlers: TransportHandlers): void {
    this.handlers = handlers;
  }
  write(...parts: Buffer[]): boolean {
    for (const part of parts) this.written.push(...this.decoder.push(part));
    return true;
  }
  pause(): void {
    this.calls.push('pause');
  }
  resume(): void {
    this.calls.push('resume');
  }
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    // Like a socket: 'close' comes on a later turn.
    setImmediate(() => this.handlers!.closed());
  }
  describeFailure(err: Error, agentAnswered: boolean): ConnectionProblem {
    this.failures.push({ err, agentAnswered });
    return { code: ErrorCodes.CONNECT, message: `described: ${err.message}` };
  }
  describeSilence(limit: string): ConnectionProblem {
    return { code: ErrorCodes.HANDSHAKE_TIMEOUT, message: `silent for ${limit}` };
  }
  /** The agent's frames, as bytes arriving. */
  agent(...frames: Buffer[]): void {
    this.handlers!.data(Buffer.concat(frames));
  }
}

const request = (argv: string[], options: Partial<SessionOptions> = {}, token?: string): RunRequest => ({
  argv,
  options: { ...defaultSessionOptions(), ...options },
  token: token === undefined ? undefined : Buffer.from(token),
  software: 'distrun/test',
});

function scripted(req: RunRequest = request(['echo', 'hi']), connectTimeoutMs = 60_000) {
  const transport = new ScriptedTransport();
  const session = new HostSession(target('web1'), req, { connectTimeoutMs, commandTimeoutMs: 0 }, transport);
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  session.on('stdout', (c) => stdout.push(c));
  session.on('stderr', (c) => stderr.push(c));
  const result = session.run();
  return { transport, session, result, stdout, stderr };
}

const agentVersion = (version = 4, keepaliveSeconds = 0): Buffer =>
  encodeVersionChoice({ version, software: 'distrunner-agent/test', keepaliveSeconds });

test('nothing is written before the transport has verified the agent; early input and signals follow the opening in order', async (t) => {
  const { transport, session, result } = scripted(request(['cat'], { stdin: true }, 's3cret'));
  session.sendInput(Buffer.from('early'));
  session.signal('SIGINT');
  session.endInput();
  t.deepEqual(transport.written, [], 'not the token, not stdin');
  transport.handlers!.ready({ certificateExpires: EXPIRES });
  const tokens = transport.written.map((f) => f.token);
  t.deepEqual(tokens, [
    ClientToken.VERSION,
    ClientToken.OPTION,
    ClientToken.AUTH,
    ClientToken.COMMAND,
    ClientToken.INPUT,
    ClientToken.SIGNAL,
    ClientToken.END_OF_INPUT,
  ]);
  t.deepEqual(decodeVersionOffer(transport.written[0]!.payload), { versions: [...SUPPORTED_VERSIONS], software: 'distrun/test' });
  t.is(transport.written[2]!.payload.toString(), 's3cret');
  t.deepEqual(decodeCommand(transport.written[3]!.payload), ['cat']);
  t.is(transport.written[4]!.payload.toString(), 'early');
  // Input after the end of input is dropped; later frames go straight out.
  session.sendInput(Buffer.from('late'));
  t.is(transport.written.length, 7);
  transport.agent(agentVersion(), encodeExit({ code: 0, timedOut: false }));
  t.like((await result).outcome, { kind: 'exit', code: 0 });
});

test("output, exit status and the agent's software; the connection is closed as soon as EXT is in", async (t) => {
  const { transport, result, stdout, stderr } = scripted();
  transport.handlers!.ready({ certificateExpires: EXPIRES });
  transport.agent(agentVersion(), encodeFrame(AgentToken.STDOUT, 'out\n'), encodeFrame(AgentToken.STDERR, 'err\n'));
  t.false(transport.destroyed);
  transport.agent(encodeExit({ code: 3, timedOut: false }));
  t.true(transport.destroyed, 'closed without waiting for the agent to close');
  const r = await result;
  t.deepEqual(r.outcome, { kind: 'exit', code: 3, timedOut: false });
  t.is(r.agentSoftware, 'distrunner-agent/test');
  t.is(r.protocolVersion, 4);
  t.is(Buffer.concat(stdout).toString(), 'out\n');
  t.is(Buffer.concat(stderr).toString(), 'err\n');
});

test("a FAI ends the session with the agent's code; its words come without terminal controls", async (t) => {
  const { transport, result } = scripted();
  transport.handlers!.ready({ certificateExpires: EXPIRES });
  transport.agent(agentVersion(), encodeFailure({ code: ErrorCodes.SPAWN, reason: 'no such program\x1b]0;owned\x07', exitCode: 127 }));
  const { outcome } = await result;
  t.deepEqual(outcome, { kind: 'error', code: ErrorCodes.SPAWN, message: 'no such program^[]0;owned^G', exitCode: 127 });
});

test('output before VER, or a version this client does not speak, breaks the protocol and closes the connection', async (t) => {
  const early = scripted();
  early.transport.handlers!.ready({ certificateExpires: EXPIRES });
  early.transport.agent(encodeFrame(AgentToken.STDOUT, 'x'));
  t.true(early.transport.destroyed);
  t.deepEqual((await early.result).outcome, {
    kind: 'error',
    code: ErrorCodes.PROTOCOL,
    message: 'agent broke the protocol: expected VER first, got OUT',
  });
  t.deepEqual(early.stdout, [], 'nothing of it is shown');
  const future = scripted();
  future.transport.handlers!.ready({ certificateExpires: EXPIRES });
  future.transport.agent(agentVersion(99));
  t.like((await future.result).outcome, { kind: 'error', code: ErrorCodes.VERSION });
});

test('a transport failure is put in words by the transport, which learns whether the agent had answered', async (t) => {
  const before = scripted();
  before.transport.handlers!.failed(new Error('reset'));
  before.transport.handlers!.closed();
  t.deepEqual((await before.result).outcome, { kind: 'error', code: ErrorCodes.CONNECT, message: 'described: reset' });
  t.false(before.transport.failures[0]!.agentAnswered);
  const during = scripted();
  during.transport.handlers!.ready({ certificateExpires: EXPIRES });
  during.transport.agent(agentVersion());
  during.transport.handlers!.failed(new Error('reset'));
  during.transport.handlers!.closed();
  await during.result;
  t.true(during.transport.failures[0]!.agentAnswered);
});

test('a connection that closes before the end: during the handshake, or during the command', async (t) => {
  const handshake = scripted();
  handshake.transport.handlers!.closed();
  t.deepEqual((await handshake.result).outcome, {
    kind: 'error',
    code: ErrorCodes.DISCONNECTED,
    message: 'agent closed the connection during the handshake (it may be dropping connections: too many not yet in a session)',
  });
  const command = scripted();
  command.transport.handlers!.ready({ certificateExpires: EXPIRES });
  command.transport.agent(agentVersion(), encodeFrame(AgentToken.STDOUT, 'partial'));
  command.transport.handlers!.closed();
  t.deepEqual((await command.result).outcome, {
    kind: 'error',
    code: ErrorCodes.DISCONNECTED,
    message: 'connection closed before the command finished',
  });
  t.is(Buffer.concat(command.stdout).toString(), 'partial', 'what came is still shown');
});

test('no answer within the connect limit: the transport names the step it reached, and the connection is dropped', async (t) => {
  const { transport, result } = scripted(request(['true']), 1);
  const { outcome } = await result;
  t.deepEqual(outcome, { kind: 'error', code: ErrorCodes.HANDSHAKE_TIMEOUT, message: 'silent for 0.001 s' });
  t.true(transport.destroyed);
});

test('pausing the session pauses the transport; a ping reports the certificate expiry the transport verified', async (t) => {
  const { transport, session, result } = scripted(request([]));
  session.pause();
  session.resume();
  t.deepEqual(transport.calls, ['pause', 'resume']);
  transport.handlers!.ready({ certificateExpires: EXPIRES });
  t.deepEqual(
    transport.written.map((f) => f.token),
    [ClientToken.VERSION, ClientToken.PING],
    'default options are not sent',
  );
  transport.agent(agentVersion(), encodePong({ time: Date.now() }));
  const { outcome } = await result;
  t.like(outcome, { kind: 'pong', certificateExpires: EXPIRES });
});

/** The client's end of an in-memory pair as a transport: verified at once. */
class DuplexTransport implements Transport {
  constructor(private readonly stream: Duplex) {}
  open(handlers: TransportHandlers): void {
    this.stream.on('data', (chunk: Buffer) => handlers.data(chunk));
    this.stream.on('error', (err) => handlers.failed(err));
    this.stream.on('close', () => handlers.closed());
    this.stream.on('drain', () => handlers.drain());
    // The agent closing its side ends ours too, as TLS does.
    this.stream.on('end', () => this.stream.destroy());
    setImmediate(() => handlers.ready({ certificateExpires: EXPIRES }));
  }
  write(...parts: Buffer[]): boolean {
    let flowing = true;
    for (const part of parts) flowing = this.stream.write(part);
    return flowing;
  }
  pause(): void {
    this.stream.pause();
  }
  resume(): void {
    this.stream.resume();
  }
  // A socket's peer sees the end of a destroyed connection; a duplex pair's needs it said.
  destroy(): void {
    this.stream.end();
    this.stream.destroy();
  }
  describeFailure(err: Error): ConnectionProblem {
    return { code: ErrorCodes.CONNECT, message: err.message };
  }
  describeSilence(limit: string): ConnectionProblem {
    return { code: ErrorCodes.HANDSHAKE_TIMEOUT, message: `silent for ${limit}` };
  }
}

test('against a real AgentSession in memory: exact argv, stdin to its end, stdout and stderr apart, the exit code', async (t) => {
  const agent = memoryAgent();
  const argv = ['sh', '-c', 'printf "%s|" "$@"; cat; echo oops >&2; exit 5', 'sh', 'a b', '', 'ü\nx'];
  const session = new HostSession(
    target('web1'),
    request(argv, { stdin: true, stderr: true }),
    { connectTimeoutMs: 60_000, commandTimeoutMs: 0 },
    new DuplexTransport(agent.clientSide),
  );
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  session.on('stdout', (c) => stdout.push(c));
  session.on('stderr', (c) => stderr.push(c));
  const result = session.run();
  session.sendInput(Buffer.from('from stdin\n'));
  session.endInput();
  const r = await result;
  t.deepEqual(r.outcome, { kind: 'exit', code: 5, timedOut: false });
  t.is(Buffer.concat(stdout).toString(), 'a b||ü\nx|from stdin\n');
  t.is(Buffer.concat(stderr).toString(), 'oops\n');
  t.is(r.agentSoftware, 'distrunner-agent/test');
  await agent.released;
  t.like(agent.records, [{ event: 'start', argv }, { event: 'end' }]);
});

test('a copy opens with PUT instead of CMD; an agent that chose protocol 4 is too old: nothing is sent after the opening', async (t) => {
  const copy = { dest: '/srv', sources: 1, preserve: false, backup: false };
  const { transport, session, result } = scripted({ ...request([], { stdin: true }), copy });
  transport.handlers!.ready({ certificateExpires: EXPIRES });
  t.deepEqual(
    transport.written.map((f) => f.token),
    [ClientToken.VERSION, ClientToken.OPTION, ClientToken.PUT],
  );
  transport.agent(agentVersion(4));
  t.true(transport.destroyed);
  session.sendInput(Buffer.from('file stream'));
  t.is(transport.written.length, 3, 'no input after the refusal');
  t.deepEqual((await result).outcome, {
    kind: 'error',
    code: ErrorCodes.VERSION,
    message: 'this agent is too old for copy (protocol 4; copy needs 5)',
  });
});

test('a fetch opens with GET instead of CMD, without stdin; an agent that chose protocol 4 is too old for fetch', async (t) => {
  const fetch = { paths: ['/etc/hostname'], recursive: false, maxBytes: 1024 };
  const { transport, result } = scripted({ ...request([]), fetch });
  transport.handlers!.ready({ certificateExpires: EXPIRES });
  t.deepEqual(
    transport.written.map((f) => f.token),
    [ClientToken.VERSION, ClientToken.GET],
  );
  transport.agent(agentVersion(4));
  t.true(transport.destroyed);
  t.deepEqual((await result).outcome, {
    kind: 'error',
    code: ErrorCodes.VERSION,
    message: 'this agent is too old for fetch (protocol 4; fetch needs 5)',
  });
});
