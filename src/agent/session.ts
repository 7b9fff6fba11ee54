// The agent's side of one session: a state machine fed with decoded frames. It owns
// the command it starts; the transport is any duplex byte stream (a TLS socket in
// production), so the rules here do not depend on how bytes travel.
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { ErrorCodes, ProtocolError, isDistRunError, messageOf } from '../errors.js';
import {
  AGENT_TOKENS,
  AgentToken,
  CLIENT_TOKENS,
  ClientToken,
  HELD_VERSION,
  KEEPALIVE_VERSION,
  STREAM_TOKENS,
  SUPPORTED_VERSIONS,
} from '../protocol/constants.js';
import { FrameDecoder, type Frame } from '../protocol/frame-decoder.js';
import { Keepalive } from '../protocol/keepalive.js';
import {
  applyOption,
  defaultSessionOptions,
  decodeSignal,
  decodeVersionOffer,
  decodeWindow,
  encodeExit,
  encodeFailure,
  encodeFrame,
  encodeFrameHeader,
  encodeHeld,
  encodePong,
  encodeVersionChoice,
  type ExitStatus,
  type Failure,
  type LeaderExit,
  type SessionOptions,
} from '../protocol/messages.js';
import { chooseVersion } from '../protocol/version-rules.js';
import type { AuditClient } from './audit.js';
import { admitCommand, admitCopy, admitFetch, commandLengthFailure, type Admission, type AdmittedSpec } from './command-admission.js';
import { FileStreamWatch } from './file-stream-watch.js';
import { CommandProcess, type CommandHelpers } from './command-process.js';
import { InputBatch } from './input-batch.js';
import type { PendingMemory } from './pending-memory.js';
import type { AgentRuntime } from './runtime.js';
import { SessionAudit, type CommandTraffic } from './session-audit.js';
import { tokenMatches } from './token-digest.js';

/**
 * Who is on the other end, as the transport established it (server.ts: the TLS
 * handshake; `name` by the rule of pki/client-name.ts, `peer` its address).
 */
export interface PeerIdentity extends AuditClient {
  peer: string;
}

/**
 * All a session uses of its byte stream: any Duplex has it (a TLS socket in production,
 * one end of an in-memory pair in tests).
 */
type SessionTransport = Pick<
  Duplex,
  'on' | 'once' | 'write' | 'cork' | 'uncork' | 'end' | 'pause' | 'resume' | 'destroy' | 'writableFinished' | 'destroyed'
>;

interface AgentSessionOptions {
  transport: SessionTransport;
  /** Configuration and what was loaded with it; a reload does not change a running session's. */
  runtime: AgentRuntime;
  identity: PeerIdentity;
  /** The agent's number for the session, in its log lines and audit records. */
  id: number;
  log: Logger;
  /** The agent's software version, told to the client in VER. */
  software: string;
  /** Pipes for the command's output and the guard against orphans, when the agent has them. */
  helpers?: SessionHelpers;
}

type State = 'version' | 'setup' | 'running' | 'closed';

/** The agent-wide helpers a session uses. */
interface SessionHelpers extends CommandHelpers {
  /** The budget for what sessions hold before acting on it. */
  memory?: PendingMemory;
}

/** At most this many OPT frames per session (each also counts against maxOptionBytes). */
const MAX_OPTION_FRAMES = 256;
/** Largest PUT payload: a destination path of up to 4 KiB and a few flags. */
const PUT_FRAME_BYTES = 8 * 1024;
/** Largest GET payload: several paths of up to 4 KiB each. */
const GET_FRAME_BYTES = 64 * 1024;
/** Largest payload of the small control frames (EOF, SIG, PNG, KAL, WIN). */
const CONTROL_FRAME_BYTES = 256;
/**
 * After its last frame has left for the client, a session waits this long for the client
 * to close before closing itself: a peer that never closes (half-open) holds neither a
 * slot nor its connection for longer.
 */
const LINGER_MS = 10_000;
/** More than the kernel's socket buffers on both ends can hold in flight (tcp_rmem + tcp_wmem maxima). */
const MAX_BYTES_AFTER_END = 16 * 1024 * 1024;
/** Protocol 1, input backed up, keepalives off: how often the client is probed. */
const DEFAULT_PROBE_SECONDS = 15;

interface AgentSessionEvents {
  /** The session has ended and its last frame has left: it no longer counts against the limits. */
  released: [];
}

export class AgentSession extends EventEmitter<AgentSessionEvents> {
  private state: State = 'version';
  private readonly decoder: FrameDecoder;
  private readonly options: SessionOptions = defaultSessionOptions();
  private authenticated: boolean;
  private inputEnded = false;
  private command: CommandProcess | undefined;
  private outputPaused = false;
  private inputPaused = false;
  private readonly inputBatch = new InputBatch((data) => this.writeInput(data));
  private readonly startedAt = Date.now();
  private readonly traffic: CommandTraffic = { bytesIn: 0, bytesOut: 0, bytesErr: 0 };
  private setupTimer: NodeJS.Timeout | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  /** Version 2 sessions with keepaliveSeconds > 0, once the command runs. */
  private keepalive: Keepalive | undefined;
  private version = 0;
  /** Why the connection is being dropped by us, for the audit record. */
  private dropReason: string | undefined;
  private readonly audit: SessionAudit;
  private optionFrames = 0;
  private optionBytes = 0;
  /** Bytes this session holds from the agent-wide budget (options, a frame being received). */
  private heldBytes = 0;
  private released = false;
  private lingerTimer: NodeJS.Timeout | undefined;
  /** Bytes received after the session ended, read only so that the peer's close is seen. */
  private bytesAfterEnd = 0;
  /** What the command was started with (a copy's clean-up runs the same way). */
  private commandSpec: AdmittedSpec | undefined;
  /** A copy's receiver or a fetch's sender: its stdout, watched for the audit and for temporary files. */
  private fileStream: FileStreamWatch | undefined;
  /** Protocol 1 has no keepalives: while its input is backed up, empty OUT frames find out whether the client is still there. */
  private probeTimer: NodeJS.Timeout | undefined;

  private readonly transport: SessionTransport;
  private readonly runtime: AgentRuntime;
  private readonly identity: PeerIdentity;
  private readonly log: Logger;
  private readonly software: string;
  private readonly helpers: SessionHelpers;

  constructor(options: AgentSessionOptions) {
    super();
    const { transport, runtime, identity, log } = options;
    this.transport = transport;
    this.runtime = runtime;
    this.identity = identity;
    this.log = log;
    this.software = options.software;
    this.helpers = options.helpers ?? {};
    const { config } = runtime;
    const { name, serial, fingerprint, peer } = identity;
    this.audit = new SessionAudit(runtime.audit, { session: options.id, client: { name, serial, fingerprint }, peer }, log);
    // Until the client has fully authenticated it may only send small frames.
    this.authenticated = runtime.tokenDigest === undefined;
    this.decoder = new FrameDecoder({
      maxPayload: config.preAuthMaxFrameBytes,
      streamed: STREAM_TOKENS,
      checkLength: (token, length) => this.admitFrame(token, length),
    });
    transport.on('data', (chunk: Buffer) => this.receive(chunk));
    transport.on('close', () => this.onTransportClosed());
    transport.on('error', (err) => this.log.debug({ err: messageOf(err) }, 'connection error'));
    transport.on('drain', () => this.resumeOutput());
    this.setupTimer = setTimeout(() => {
      this.fail({ code: ErrorCodes.LIMIT, reason: `no command received within ${config.setupTimeoutSeconds} s` });
    }, config.setupTimeoutSeconds * 1000);
  }

  private receive(chunk: Buffer): void {
    if (this.state === 'closed') return this.discard(chunk.length);
    this.touch();
    this.keepalive?.heard();
    try {
      for (const frame of this.decoder.decode(chunk)) {
        if (!STREAM_TOKENS.has(frame.token)) this.hold(-frame.payload.length);
        this.handle(frame);
        if ((this.state as State) === 'closed') return;
      }
    } catch (err) {
      if (
        isDistRunError(err) &&
        ([ErrorCodes.PROTOCOL, ErrorCodes.FRAME_TOO_LARGE, ErrorCodes.LIMIT, ErrorCodes.BUSY] as string[]).includes(err.code)
      ) {
        this.fail({ code: err.code, reason: err.message });
      } else {
        this.log.error({ err: messageOf(err) }, 'session failed');
        this.fail({ code: ErrorCodes.INTERNAL, reason: 'internal error in the agent' });
      }
    }
  }

  private handle({ token, payload }: Frame): void {
    switch (this.state) {
      case 'version':
        if (token !== ClientToken.VERSION) throw new ProtocolError(`expected VER first, got ${describe(token)}`);
        return this.negotiate(payload);
      case 'setup':
        switch (token) {
          case ClientToken.OPTION:
            return this.option(payload);
          case ClientToken.AUTH:
            return this.authenticate(payload);
          case ClientToken.COMMAND:
            return this.run(payload);
          case ClientToken.PUT:
            return this.transfer('copy', payload);
          case ClientToken.GET:
            return this.transfer('fetch', payload);
          case ClientToken.PING:
            return this.pong();
          case ClientToken.KEEPALIVE:
            return this.keepaliveReceived();
          default:
            throw new ProtocolError(`${describe(token)} is not allowed before CMD`);
        }
      case 'running':
        switch (token) {
          case ClientToken.INPUT:
            return this.input(payload);
          case ClientToken.END_OF_INPUT:
            return this.endInput();
          case ClientToken.SIGNAL:
            this.inputBatch.flush(); // the input sent before the signal is the command's first
            return this.command?.signal(decodeSignal(payload));
          case ClientToken.KEEPALIVE:
            return this.keepaliveReceived();
          case ClientToken.WINDOW:
            return this.resize(payload);
          default:
            throw new ProtocolError(`${describe(token)} is not allowed after CMD`);
        }
      case 'closed':
        return;
    }
  }

  // Every header, before its payload is buffered: what a session may hold is bounded per
  // message and agent-wide (PendingMemory) before authentication and before policy.
  private admitFrame(token: string, length: number): void {
    if (STREAM_TOKENS.has(token)) return; // passed on piece by piece, held at most until the loop's next turn (InputBatch)
    const { config } = this.runtime;
    const tooLong = token === ClientToken.COMMAND ? commandLengthFailure(length, config.maxArgvBytes) : undefined;
    if (tooLong) throw new ProtocolError(tooLong.reason, tooLong.code);
    if (token === ClientToken.OPTION && this.optionBytes + length > config.maxOptionBytes) {
      throw new ProtocolError(
        `options of more than ${config.maxOptionBytes} bytes in all exceed the agent's limit (maxOptionBytes)`,
        ErrorCodes.LIMIT,
      );
    }
    const limit =
      token === ClientToken.COMMAND || token === ClientToken.OPTION
        ? Infinity
        : token === ClientToken.PUT
          ? PUT_FRAME_BYTES
          : token === ClientToken.GET
            ? GET_FRAME_BYTES
            : token === ClientToken.VERSION || token === ClientToken.AUTH
              ? config.preAuthMaxFrameBytes
              : CONTROL_FRAME_BYTES;
    if (length > limit) {
      throw new ProtocolError(`${token} frame of ${length} bytes exceeds the limit of ${limit} bytes`, ErrorCodes.FRAME_TOO_LARGE);
    }
    if (!this.hold(length)) throw new ProtocolError('the agent is short of memory for new sessions; try again later', ErrorCodes.BUSY);
  }

  /** Takes (or, negative, gives back) bytes of the agent-wide budget; false when there is not enough. */
  private hold(bytes: number): boolean {
    const memory = this.helpers.memory;
    if (!memory || bytes === 0) return true;
    if (bytes < 0) {
      const back = Math.min(-bytes, this.heldBytes);
      memory.release(back);
      this.heldBytes -= back;
      return true;
    }
    if (!memory.reserve(bytes)) return false;
    this.heldBytes += bytes;
    return true;
  }

  private option(payload: Buffer): void {
    this.optionFrames += 1;
    if (this.optionFrames > MAX_OPTION_FRAMES) {
      throw new ProtocolError(`more than ${MAX_OPTION_FRAMES} options`, ErrorCodes.LIMIT);
    }
    // Held until the command starts: counted against the session's and the agent's budget.
    this.optionBytes += payload.length;
    if (!this.hold(payload.length)) throw new ProtocolError('the agent is short of memory for new sessions; try again later', ErrorCodes.BUSY);
    applyOption(this.options, payload);
  }

  private negotiate(payload: Buffer): void {
    const offer = decodeVersionOffer(payload);
    const version = chooseVersion(offer.versions);
    if (version === undefined) {
      this.fail({
        code: ErrorCodes.VERSION,
        reason: `client speaks protocol ${offer.versions.join(', ')}; this agent speaks ${SUPPORTED_VERSIONS.join(', ')}`,
      });
      return;
    }
    this.version = version;
    const { keepaliveSeconds } = this.runtime.config;
    this.transport.write(encodeVersionChoice({ version, software: this.software, keepaliveSeconds }));
    if (version >= KEEPALIVE_VERSION) {
      this.keepalive = new Keepalive(keepaliveSeconds * 1000, {
        send: () => this.transport.write(encodeFrame(AgentToken.KEEPALIVE)),
        lost: (limitMs) => this.drop(`client silent for ${limitMs / 1000} s (connection lost)`),
      });
    }
    this.state = 'setup';
    if (this.authenticated) this.decoder.maxPayload = this.runtime.config.maxFrameBytes;
  }

  private authenticate(payload: Buffer): void {
    const expected = this.runtime.tokenDigest;
    if (!expected) return; // no token required: a supplied one is ignored
    if (!tokenMatches(payload, expected)) {
      this.fail({ code: ErrorCodes.AUTH, reason: 'authentication token rejected' });
      return;
    }
    this.authenticated = true;
    this.decoder.maxPayload = this.runtime.config.maxFrameBytes;
  }

  // A ping passes every check a command would pass up to authorization, then ends.
  private pong(): void {
    if (!this.authenticated) {
      this.fail({ code: ErrorCodes.AUTH, reason: 'this agent requires an authentication token' });
      return;
    }
    clearTimeout(this.setupTimer);
    this.log.debug('ping');
    this.state = 'closed';
    this.clearTimers();
    this.endWith(encodePong({ time: Date.now() }));
  }

  private run(payload: Buffer): void {
    this.start(
      admitCommand(
        { command: payload, options: this.options, version: this.version, authenticated: this.authenticated },
        this.identity,
        this.runtime,
      ),
    );
  }

  // A copy or a fetch is a command whose program is the agent's file receiver or sender (command-admission.ts).
  private transfer(direction: 'copy' | 'fetch', payload: Buffer): void {
    const asked = { request: payload, options: this.options, version: this.version, authenticated: this.authenticated };
    const admission = (direction === 'copy' ? admitCopy : admitFetch)(asked, this.identity, this.runtime);
    if (admission.admitted) this.fileStream = new FileStreamWatch(this.audit, this.log, direction);
    this.start(admission);
  }

  private start(admission: Admission): void {
    if (!admission.admitted) {
      if (admission.denied) this.audit.denied(admission.denied, admission.failure.reason);
      this.fail(admission.failure);
      return;
    }
    clearTimeout(this.setupTimer);
    const { spec } = admission;
    this.commandSpec = spec;
    let auditId: string;
    try {
      // Fail closed: a command that cannot be audited does not run.
      auditId = this.audit.start(admission.audit);
    } catch (err) {
      this.log.error({ err: messageOf(err) }, 'audit log unavailable: refusing the command');
      this.fail({ code: ErrorCodes.AUDIT, reason: 'the agent cannot write its audit log; commands are refused' });
      return;
    }
    this.state = 'running';
    // The options have served their purpose.
    this.hold(-this.heldBytes);
    const { argv, shell, cwd, envNames, runAs, pty, copy, fetch } = admission.audit;
    const { stdin, stderr, timeoutMs } = spec;
    // Environment values may be secrets: only their names are logged and audited.
    if (copy) this.log.info({ copy, timeoutMs, runAs, audit: auditId }, 'copy');
    else if (fetch) this.log.info({ fetch, timeoutMs, runAs, audit: auditId }, 'fetch');
    else this.log.info({ argv, shell, stdin, stderr, timeoutMs, cwd, envNames, runAs, pty, audit: auditId }, 'command');
    let command: CommandProcess;
    try {
      command = new CommandProcess({ ...spec, ...this.commandHelpers() });
    } catch (err) {
      this.log.error({ err: messageOf(err) }, 'cannot start the command');
      this.recordEnd(undefined, 'internal error in the agent');
      this.fail({ code: ErrorCodes.INTERNAL, reason: 'internal error in the agent' });
      return;
    }
    this.command = command;
    command.once('spawn-error', (failure) => {
      this.recordEnd(undefined, failure.reason);
      this.fail({ code: ErrorCodes.SPAWN, reason: failure.reason, exitCode: failure.exitCode });
    });
    command.once('exit', (status) => this.finish(status));
    command.once('output-held', (leader) => this.outputHeld(leader));
    command.stdout.on('data', (chunk: Buffer) => {
      this.traffic.bytesOut += chunk.length;
      this.fileStream?.answers(chunk);
      this.send(AgentToken.STDOUT, chunk);
    });
    command.stderr?.on('data', (chunk: Buffer) => {
      this.traffic.bytesErr += chunk.length;
      this.send(AgentToken.STDERR, chunk);
    });
    if (!stdin) this.inputEnded = true;
    this.touch();
    this.keepalive?.start();
  }

  // Output frames respect the client's reading speed: when the socket buffer is full the
  // command's pipes are paused, so the command blocks instead of the agent buffering.
  private send(token: string, chunk: Buffer): void {
    if (this.state !== 'running') return;
    this.touch();
    // Header and payload in one write (cork): one TLS record, and the payload is not
    // copied into a new frame buffer that only the garbage collector would free.
    this.transport.cork();
    this.transport.write(encodeFrameHeader(token, chunk.length));
    const flowing = this.transport.write(chunk);
    this.transport.uncork();
    if (!flowing && !this.outputPaused) {
      this.outputPaused = true;
      this.command?.stdout.pause();
      this.command?.stderr?.pause();
    }
  }

  private resumeOutput(): void {
    if (!this.outputPaused) return;
    this.outputPaused = false;
    this.command?.stdout.resume();
    this.command?.stderr?.resume();
  }

  private input(payload: Buffer): void {
    if (!this.options.stdin) throw new ProtocolError('INP without the stdin option');
    if (this.inputEnded) throw new ProtocolError('INP after EOF');
    this.traffic.bytesIn += payload.length;
    this.inputBatch.add(payload);
  }

  private writeInput(data: Buffer): void {
    const stdin = this.command?.stdin;
    if (!stdin || stdin.destroyed || stdin.writableEnded) return; // the command closed its stdin
    // Stop reading from the client while the command does not keep up with its input.
    if (!stdin.write(data) && !this.inputPaused) {
      this.inputPaused = true;
      this.transport.pause();
      this.keepalive?.pause();
      // Unread, the client's close waits behind its input: only a write tells whether it
      // is still there (a closed peer answers with a reset). Protocol 2 sends keepalives.
      if (!this.keepalive) this.startProbe();
      const resume = (): void => {
        if (!this.inputPaused) return;
        this.inputPaused = false;
        clearInterval(this.probeTimer);
        this.transport.resume();
        this.keepalive?.resume();
      };
      stdin.once('drain', resume);
      stdin.once('close', resume);
    }
  }

  // An empty OUT frame: no output, valid in every protocol version.
  private startProbe(): void {
    const seconds = this.runtime.config.keepaliveSeconds || DEFAULT_PROBE_SECONDS;
    clearInterval(this.probeTimer);
    this.probeTimer = setInterval(() => {
      if (this.state === 'running') this.transport.write(encodeFrameHeader(AgentToken.STDOUT, 0));
    }, seconds * 1000);
    this.probeTimer.unref();
  }

  private resize(payload: Buffer): void {
    if (!this.options.pty) throw new ProtocolError('WIN without the pty option');
    this.command?.resize(decodeWindow(payload));
  }

  // Only version 2 clients send KAL; receive() has noted that the client is alive.
  private keepaliveReceived(): void {
    if (!this.keepalive) throw new ProtocolError('KAL needs protocol version 2');
  }

  private endInput(): void {
    if (!this.options.stdin) throw new ProtocolError('EOF without the stdin option');
    if (this.inputEnded) throw new ProtocolError('EOF twice');
    this.inputEnded = true;
    this.inputBatch.flush();
    this.command?.stdin?.end();
  }

  // Idle limit: no byte in either direction for idleTimeoutSeconds ends the session.
  private touch(): void {
    const seconds = this.runtime.config.idleTimeoutSeconds;
    if (seconds === 0 || this.state === 'closed') return;
    if (this.idleTimer) {
      this.idleTimer.refresh();
      return;
    }
    this.idleTimer = setTimeout(() => {
      this.fail({ code: ErrorCodes.LIMIT, reason: `session idle for ${seconds} s` });
    }, seconds * 1000);
  }

  // The client waits for the output to end as ssh would, but can say why (version 4);
  // the time limit and a disconnect still end what holds it.
  private outputHeld(leader: LeaderExit): void {
    if (this.state !== 'running') return;
    this.log.info({ code: leader.code, signal: leader.signal }, 'command exited; its output is held open by processes it left behind');
    if (this.version >= HELD_VERSION) this.transport.write(encodeHeld(leader));
  }

  private finish(status: ExitStatus): void {
    this.removeTemporaries();
    if (this.state !== 'running') return;
    this.log.info(
      {
        code: status.code,
        signal: status.signal,
        timedOut: status.timedOut,
        durationMs: Date.now() - this.startedAt,
        ...this.traffic,
      },
      'exit',
    );
    this.recordEnd(status, undefined);
    this.state = 'closed';
    this.clearTimers();
    this.endWith(encodeExit(status));
  }

  private recordEnd(status: ExitStatus | undefined, reason: string | undefined): void {
    this.audit.end(status, reason, { ...this.traffic });
  }

  // The last frame, then close our side; the peer closes its side once it has read
  // everything. Not destroyed at once: destroying a socket drops whatever libuv still
  // queues for it, which a slow or paused reader (`distrun ... | less`) has not received
  // yet; a peer that never reads holds only its own session (maxSessionsPerClient), and
  // agent shutdown destroys what is left. Once everything has been handed to the kernel
  // (which delivers it even after a close), the session frees its slot and gives the peer
  // LINGER_MS to close before closing itself, so a half-open peer holds nothing.
  private endWith(frame: Buffer): void {
    this.transport.end(frame);
    if (this.transport.writableFinished) this.lastFrameSent();
    else this.transport.once('finish', () => this.lastFrameSent());
  }

  private lastFrameSent(): void {
    this.release();
    if (this.transport.destroyed) return;
    // Read and drop whatever the peer still sends, so its close is seen.
    this.transport.resume();
    this.lingerTimer = setTimeout(() => this.transport.destroy(), LINGER_MS);
    this.lingerTimer.unref();
  }

  // Input already on its way when the session ended is read and dropped, so that our
  // last frame is not lost to a reset; a peer that goes on sending after that is not
  // worth the decryption.
  private discard(bytes: number): void {
    this.bytesAfterEnd += bytes;
    if (this.bytesAfterEnd > MAX_BYTES_AFTER_END) this.transport.destroy();
  }

  /** The session no longer counts against the agent's limits. */
  private release(): void {
    if (this.released) return;
    this.released = true;
    clearInterval(this.probeTimer);
    this.hold(-this.heldBytes);
    this.emit('released');
  }

  private clearTimers(): void {
    clearTimeout(this.setupTimer);
    clearTimeout(this.idleTimer);
    clearInterval(this.probeTimer);
    this.keepalive?.stop();
  }

  // The client cannot hear us any more: nothing to say, just close and stop the command.
  private drop(reason: string): void {
    if (this.state === 'closed') return;
    this.log.warn({ reason, durationMs: Date.now() - this.startedAt }, 'client lost; stopping command');
    this.dropReason = reason;
    this.transport.destroy();
  }

  /** Ends the session with a FAI message; stops the command if one runs. */
  fail(failure: Failure): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.clearTimers();
    this.endCommand(failure.reason);
    const level = failure.code === ErrorCodes.SPAWN ? 'info' : 'warn';
    this.log[level]({ code: failure.code, reason: failure.reason }, 'session refused');
    this.endWith(encodeFailure(failure));
  }

  private onTransportClosed(): void {
    this.clearTimers();
    clearTimeout(this.lingerTimer);
    if (this.command && this.state === 'running' && !this.dropReason) {
      this.log.info({ durationMs: Date.now() - this.startedAt }, 'client disconnected; stopping command');
    }
    this.state = 'closed';
    this.endCommand(this.dropReason ?? 'client disconnected');
    this.release();
  }

  // The session is over while its command may still run: stop it, and let go of its
  // output whatever state the pipes are in (paused behind a full socket, held by
  // descendants), so that its end is seen, audited and its descriptors freed. Also
  // covers a command whose leader exited while descendants still hold its pipes.
  private endCommand(reason: string): void {
    const { command } = this;
    if (!command) return;
    command.once('exit', (status) => {
      this.recordEnd(status, reason);
      this.removeTemporaries();
    });
    command.stop();
    command.discardOutput();
  }

  // A receiver killed before it renamed its temporary file (SIGKILL after the grace
  // period) leaves it: removed as the same user, never by root in the user's directory.
  private removeTemporaries(): void {
    const paths = this.fileStream?.takeTemporaries() ?? [];
    if (paths.length === 0 || !this.command) return;
    this.log.info({ paths }, 'removing temporary files of an interrupted copy');
    const remove = new CommandProcess({
      ...this.commandSpec!,
      argv: ['/bin/rm', '-f', '--', ...paths],
      stdin: false,
      stderr: false,
      timeoutMs: 60_000,
      ...this.commandHelpers(),
    });
    remove.stdout.resume();
    remove.once('spawn-error', (failure) => this.log.warn({ paths, reason: failure.reason }, 'cannot remove temporary files'));
  }

  private commandHelpers(): CommandHelpers {
    const { pipes, reaper, cgroups, spawner } = this.helpers;
    return { pipes, reaper, cgroups, spawner };
  }

  /** Whether a command is running (drain waits for these). */
  get running(): boolean {
    return this.state === 'running';
  }

  /** Agent shutdown: refuse a session that has not started its command. */
  refuseIfIdle(): void {
    if (this.state !== 'running') this.fail({ code: ErrorCodes.BUSY, reason: 'agent is shutting down' });
  }

  /** Agent shutdown after the drain time: stop the command (SIGTERM, then SIGKILL after the grace period). */
  shutdown(): void {
    if (this.state === 'running') this.command?.stop();
    else this.refuseIfIdle();
  }

  /** Agent shutdown, second stage: kill the command's group now. */
  kill(): void {
    this.command?.kill();
    this.transport.destroy();
  }
}

function describe(token: string): string {
  if (CLIENT_TOKENS.has(token)) return token;
  if (AGENT_TOKENS.has(token)) return `${token} (an agent-only message)`;
  return `unknown message ${token}`;
}
