// The agent's side of one session: a state machine fed with decoded frames. It owns
// the command it starts; the transport is any duplex byte stream (a TLS socket in
// production), so the rules here do not depend on how bytes travel.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { ErrorCodes, ProtocolError, isDistRunError, messageOf } from '../errors.js';
import {
  AGENT_TOKENS, AgentToken, CLIENT_TOKENS, ClientToken, SUPPORTED_VERSIONS,
} from '../protocol/constants.js';
import { FrameDecoder, type Frame } from '../protocol/frame-decoder.js';
import {
  DEFAULT_SESSION_OPTIONS, applyOption, decodeCommand, decodeSignal, decodeVersionOffer,
  encodeExit, encodeFailure, encodeFrame, encodeVersionChoice, type ExitStatus, type Failure,
  type SessionOptions,
} from '../protocol/messages.js';
import { CommandProcess } from './command-process.js';

export interface SessionSettings {
  /** SHA-256 of the token a client must present, or undefined when none is required. */
  tokenDigest: Buffer | undefined;
  maxFrameBytes: number;
  killGraceMs: number;
  /** Time a client has from connecting to sending CMD. */
  setupTimeoutMs: number;
  software: string;
}

type State = 'version' | 'setup' | 'running' | 'closed';

const CLOSE_LINGER_MS = 5000;

export class AgentSession {
  private state: State = 'version';
  private readonly decoder: FrameDecoder;
  private readonly options: SessionOptions = { ...DEFAULT_SESSION_OPTIONS };
  private authenticated = false;
  private inputEnded = false;
  private command: CommandProcess | undefined;
  private outputPaused = false;
  private inputPaused = false;
  private readonly startedAt = Date.now();
  private bytesOut = 0;
  private bytesErr = 0;
  private setupTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly transport: Duplex,
    private readonly settings: SessionSettings,
    private readonly log: Logger,
  ) {
    this.decoder = new FrameDecoder({ maxPayload: settings.maxFrameBytes });
    transport.on('data', (chunk: Buffer) => this.receive(chunk));
    transport.on('close', () => this.onTransportClosed());
    transport.on('error', (err) => this.log.debug({ err: messageOf(err) }, 'connection error'));
    transport.on('drain', () => this.resumeOutput());
    this.setupTimer = setTimeout(() => {
      this.fail({ code: ErrorCodes.PROTOCOL, reason: `no command received within ${settings.setupTimeoutMs} ms` });
    }, settings.setupTimeoutMs);
  }

  private receive(chunk: Buffer): void {
    if (this.state === 'closed') return;
    try {
      for (const frame of this.decoder.push(chunk)) {
        this.handle(frame);
        if ((this.state as State) === 'closed') return;
      }
    } catch (err) {
      if (isDistRunError(err) && (err.code === ErrorCodes.PROTOCOL || err.code === ErrorCodes.FRAME_TOO_LARGE)) {
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
        if (token !== ClientToken.VERSION) throw new ProtocolError(`expected VER first, got ${token}`);
        return this.negotiate(payload);
      case 'setup':
        switch (token) {
          case ClientToken.OPTION: return applyOption(this.options, payload);
          case ClientToken.AUTH: return this.authenticate(payload);
          case ClientToken.COMMAND: return this.run(decodeCommand(payload));
          default: throw new ProtocolError(`${describe(token)} is not allowed before CMD`);
        }
      case 'running':
        switch (token) {
          case ClientToken.INPUT: return this.input(payload);
          case ClientToken.END_OF_INPUT: return this.endInput();
          case ClientToken.SIGNAL: return this.command?.signal(decodeSignal(payload));
          default: throw new ProtocolError(`${describe(token)} is not allowed after CMD`);
        }
      case 'closed':
        return;
    }
  }

  private negotiate(payload: Buffer): void {
    const offer = decodeVersionOffer(payload);
    const common = offer.versions.filter((v) => SUPPORTED_VERSIONS.includes(v));
    if (common.length === 0) {
      this.fail({
        code: ErrorCodes.VERSION,
        reason: `client speaks protocol ${offer.versions.join(', ')}; this agent speaks ${SUPPORTED_VERSIONS.join(', ')}`,
      });
      return;
    }
    const version = Math.max(...common);
    this.transport.write(encodeVersionChoice({ version, software: this.settings.software }));
    this.state = 'setup';
  }

  private authenticate(payload: Buffer): void {
    const expected = this.settings.tokenDigest;
    if (!expected) return; // no token required: a supplied one is ignored
    // Comparing fixed-length digests keeps the comparison constant-time whatever the length sent.
    if (!timingSafeEqual(tokenDigest(payload), expected)) {
      this.fail({ code: ErrorCodes.AUTH, reason: 'authentication token rejected' });
      return;
    }
    this.authenticated = true;
  }

  private run(argv: string[]): void {
    if (this.settings.tokenDigest && !this.authenticated) {
      this.fail({ code: ErrorCodes.AUTH, reason: 'this agent requires an authentication token' });
      return;
    }
    clearTimeout(this.setupTimer);
    this.state = 'running';
    const { stdin, stderr, shell, timeoutMs } = this.options;
    this.log.info({ argv, shell, stdin, stderr, timeoutMs }, 'command');
    const command = new CommandProcess({ argv, shell, stdin, stderr, timeoutMs, killGraceMs: this.settings.killGraceMs });
    this.command = command;
    command.once('spawn-error', (failure) => {
      this.fail({ code: ErrorCodes.SPAWN, reason: failure.reason, exitCode: failure.exitCode });
    });
    command.once('exit', (status) => this.finish(status));
    command.stdout.on('data', (chunk: Buffer) => {
      this.bytesOut += chunk.length;
      this.send(AgentToken.STDOUT, chunk);
    });
    command.stderr?.on('data', (chunk: Buffer) => {
      this.bytesErr += chunk.length;
      this.send(AgentToken.STDERR, chunk);
    });
    if (!stdin) this.inputEnded = true;
  }

  // Output frames respect the client's reading speed: when the socket buffer is full the
  // command's pipes are paused, so the command blocks instead of the agent buffering.
  private send(token: string, chunk: Buffer): void {
    if (this.state !== 'running') return;
    if (!this.transport.write(encodeFrame(token, chunk)) && !this.outputPaused) {
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
    const stdin = this.command?.stdin;
    if (!stdin || stdin.destroyed || stdin.writableEnded) return; // the command closed its stdin
    // Stop reading from the client while the command does not keep up with its input.
    if (!stdin.write(payload) && !this.inputPaused) {
      this.inputPaused = true;
      this.transport.pause();
      const resume = (): void => {
        if (!this.inputPaused) return;
        this.inputPaused = false;
        this.transport.resume();
      };
      stdin.once('drain', resume);
      stdin.once('close', resume);
    }
  }

  private endInput(): void {
    if (!this.options.stdin) throw new ProtocolError('EOF without the stdin option');
    if (this.inputEnded) throw new ProtocolError('EOF twice');
    this.inputEnded = true;
    this.command?.stdin?.end();
  }

  private finish(status: ExitStatus): void {
    if (this.state !== 'running') return;
    this.log.info({
      code: status.code, signal: status.signal, timedOut: status.timedOut,
      durationMs: Date.now() - this.startedAt, bytesOut: this.bytesOut, bytesErr: this.bytesErr,
    }, 'exit');
    this.state = 'closed';
    this.endWith(encodeExit(status));
  }

  // The last frame, then close; a peer that stops reading must not hold the socket forever.
  private endWith(frame: Buffer): void {
    this.transport.end(frame);
    setTimeout(() => this.transport.destroy(), CLOSE_LINGER_MS).unref();
  }

  /** Ends the session with a FAI message; stops the command if one runs. */
  fail(failure: Failure): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    clearTimeout(this.setupTimer);
    this.command?.stop();
    const level = failure.code === ErrorCodes.SPAWN ? 'info' : 'warn';
    this.log[level]({ code: failure.code, reason: failure.reason }, 'session refused');
    this.endWith(encodeFailure(failure));
  }

  private onTransportClosed(): void {
    clearTimeout(this.setupTimer);
    if (this.command && this.state === 'running') {
      this.log.info({ durationMs: Date.now() - this.startedAt }, 'client disconnected; stopping command');
    }
    this.state = 'closed';
    // Also covers a command whose leader exited while descendants still hold its pipes.
    this.command?.stop();
  }

  /** Agent shutdown: stop the command (SIGTERM, then SIGKILL after the grace period). */
  shutdown(): void {
    if (this.state === 'running') this.command?.stop();
    else this.fail({ code: ErrorCodes.BUSY, reason: 'agent is shutting down' });
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

export function tokenDigest(token: Buffer): Buffer {
  return createHash('sha256').update(token).digest();
}
