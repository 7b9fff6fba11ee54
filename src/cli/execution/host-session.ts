// The client's side of one session with one agent, whatever carries it: send the request,
// stream output to listeners, keep the connection alive, enforce the time limits, and
// settle on one HostResult. The bytes go through a Transport (mutual TLS today).
import { EventEmitter } from 'node:events';
import { ErrorCodes, ProtocolError, RemoteError, isDistRunError, type ErrorCode } from '../../errors.js';
import { AgentToken, ClientToken, FILE_VERSION, HELD_VERSION, STREAM_TOKENS, SUPPORTED_VERSIONS } from '../../protocol/constants.js';
import { encodeCopyRequest, encodeFetchRequest, type CopyRequest, type FetchRequest } from '../../protocol/file-messages.js';
import { FrameDecoder, type Frame } from '../../protocol/frame-decoder.js';
import { Keepalive } from '../../protocol/keepalive.js';
import {
  decodeExit,
  decodeFailure,
  decodeHeld,
  decodePong,
  decodeVersionChoice,
  encodeCommand,
  encodeFrame,
  encodeFrameHeader,
  encodeOptions,
  encodeSignal,
  encodeVersionOffer,
  encodeWindow,
  type LeaderExit,
  type SessionOptions,
  type WindowSize,
} from '../../protocol/messages.js';
import type { Target } from '../targeting/model.js';
import type { HostOutcome, HostResult } from './outcome.js';
import type { Session, SessionEvents } from './session.js';
import type { Transport, VerifiedAgent } from './transport.js';
import { setLongTimeout, type LongTimer } from '../../timers.js';
import { visibleText } from '../terminal-text.js';

export interface RunRequest {
  /** The command; empty for a ping (`distrun ping`), which runs nothing, and for a copy or a fetch. */
  argv: readonly string[];
  /** A copy (protocol 5) instead of a command: the file stream then travels as input, the receiver's answers as output. */
  copy?: CopyRequest;
  /** A fetch (protocol 5) instead of a command: the sender's file stream travels as output. */
  fetch?: FetchRequest;
  options: SessionOptions;
  /** Token for agents that require one. */
  token: Buffer | undefined;
  software: string;
}

export interface SessionLimits {
  connectTimeoutMs: number;
  /** The command's time limit (also sent to the agent); 0 = none. */
  commandTimeoutMs: number;
}

// After the command's time limit the agent kills the command; if its answer still does
// not come within this margin, the client gives up on the host.
const TIMEOUT_MARGIN_MS = 15_000;

export class HostSession extends EventEmitter<SessionEvents> implements Session {
  private readonly decoder = new FrameDecoder({ streamed: STREAM_TOKENS });
  private versionAgreed = false;
  private agentSoftware: string | undefined;
  private protocolVersion: number | undefined;
  private leaderExit: LeaderExit | undefined;
  private outcome: HostOutcome | undefined;
  private startedAt = 0;
  private timer: LongTimer | undefined;
  private settle: ((result: HostResult) => void) | undefined;
  private opened = false;
  private inputClosed = false;
  private readyAt = 0;
  private agent: VerifiedAgent | undefined;
  private keepalive: Keepalive | undefined;
  /** Frames to send after the opening; undefined once it has been sent. */
  private held: Buffer[] | undefined = [];

  constructor(
    readonly target: Target,
    private readonly request: RunRequest,
    private readonly limits: SessionLimits,
    private readonly transport: Transport,
  ) {
    super();
  }

  /** Runs the request; never rejects: every failure becomes an `error` outcome. */
  run(): Promise<HostResult> {
    this.startedAt = Date.now();
    return new Promise((resolve) => {
      this.settle = resolve;
      this.opened = true;
      // The connect limit runs until the agent's VER; the transport says which step it stopped at.
      this.armTimer(this.limits.connectTimeoutMs, () => {
        const { code, message } = this.transport.describeSilence(`${this.limits.connectTimeoutMs / 1000} s`);
        this.abort(code, message);
      });
      this.transport.open({
        ready: (agent) => this.onReady(agent),
        data: (chunk) => this.receive(chunk),
        failed: (err) => this.onFailure(err),
        drain: () => this.emit('input-drain'),
        closed: () => this.onClose(),
      });
    });
  }

  // Nothing is sent (not the token, not stdin) before the transport has verified the agent.
  private onReady(agent: VerifiedAgent): void {
    this.readyAt = Date.now();
    this.agent = agent;
    const flowing = this.transport.write(Buffer.concat([this.opening(), ...this.held!]));
    this.held = undefined;
    if (flowing) this.emit('input-drain');
  }

  // Input, signals and resizes that come before the agent is verified wait behind the opening.
  private send(...parts: Buffer[]): boolean {
    if (!this.held) return this.transport.write(...parts);
    this.held.push(...parts);
    // Until the agent is verified, one frame at a time: the opening's write says how full the connection is.
    return false;
  }

  // Everything up to CMD at once: the agent answers in one round trip.
  private opening(): Buffer {
    const { request } = this;
    const opening = [encodeVersionOffer({ versions: [...SUPPORTED_VERSIONS], software: request.software }), ...encodeOptions(request.options)];
    if (request.token) opening.push(encodeFrame(ClientToken.AUTH, request.token));
    opening.push(
      request.copy
        ? encodeCopyRequest(request.copy)
        : request.fetch
          ? encodeFetchRequest(request.fetch)
          : request.argv.length > 0
            ? encodeCommand(request.argv)
            : encodeFrame(ClientToken.PING),
    );
    return Buffer.concat(opening);
  }

  /** Input as one INP frame; given in parts (a frame of the file stream and its data), the parts are sent as they are, not copied. */
  sendInput(...parts: Buffer[]): boolean {
    if (this.inputClosed || !this.opened || this.outcome) return true;
    const length = parts.reduce((sum, part) => sum + part.length, 0);
    return this.send(encodeFrameHeader(ClientToken.INPUT, length), ...parts);
  }

  endInput(): void {
    if (this.inputClosed || !this.opened || this.outcome) return;
    this.inputClosed = true;
    this.send(encodeFrame(ClientToken.END_OF_INPUT));
  }

  /** The local terminal's new size (`--tty`). */
  resize(size: WindowSize): void {
    if (!this.opened || this.outcome || !this.request.options.pty) return;
    this.send(encodeWindow(size));
  }

  signal(name: NodeJS.Signals): void {
    if (!this.opened || this.outcome) return;
    this.send(encodeSignal(name));
  }

  /** Stop reading from the agent (local output is backed up); the agent then pauses the command. */
  pause(): void {
    this.transport.pause();
    this.keepalive?.pause();
  }

  resume(): void {
    this.transport.resume();
    this.keepalive?.resume();
  }

  /** Gives up on the host; closing the connection makes the agent stop the command. */
  abort(code: ErrorCode, message: string): void {
    this.outcome ??= { kind: 'error', code, message };
    if (this.opened) this.transport.destroy();
  }

  private receive(chunk: Buffer): void {
    this.keepalive?.heard();
    try {
      for (const frame of this.decoder.push(chunk)) this.handle(frame);
      // The agent's last message is here (it has ended its side): close at once, without
      // a closing exchange, which would cost both sides more than the whole command.
      if (this.outcome) this.transport.destroy();
    } catch (err) {
      if (isDistRunError(err) && err.code !== ErrorCodes.PROTOCOL && err.code !== ErrorCodes.FRAME_TOO_LARGE) {
        this.abort(err.code, err.message);
      } else {
        this.abort(ErrorCodes.PROTOCOL, `agent broke the protocol: ${(err as Error).message}`);
      }
    }
  }
  private handle({ token, payload }: Frame): void {
    if (this.outcome) return;
    if (token === AgentToken.FAILURE) {
      const failure = decodeFailure(payload);
      this.outcome = { kind: 'error', code: failure.code, message: failure.reason, exitCode: failure.exitCode };
      return;
    }
    if (!this.versionAgreed) {
      if (token !== AgentToken.VERSION) throw new ProtocolError(`expected VER first, got ${token}`);
      const choice = decodeVersionChoice(payload);
      if (!SUPPORTED_VERSIONS.includes(choice.version)) {
        throw new RemoteError(ErrorCodes.VERSION, `agent chose protocol ${choice.version}, which this client does not speak`);
      }
      this.versionAgreed = true;
      this.agentSoftware = choice.software;
      this.protocolVersion = choice.version;
      // An older agent refuses PUT or GET as an unknown message: say why first (nothing has happened).
      const transfer = this.request.copy ? 'copy' : this.request.fetch ? 'fetch' : undefined;
      if (transfer && choice.version < FILE_VERSION) {
        throw new RemoteError(
          ErrorCodes.VERSION,
          `this agent is too old for ${transfer} (protocol ${choice.version}; ${transfer} needs ${FILE_VERSION})`,
        );
      }
      this.commandStarted(choice.keepaliveSeconds);
      return;
    }
    switch (token) {
      case AgentToken.KEEPALIVE:
        return; // receive() has noted it
      case AgentToken.STDOUT:
        this.emit('stdout', payload);
        return;
      case AgentToken.STDERR:
        this.emit('stderr', payload);
        return;
      case AgentToken.EXIT:
        this.outcome = { kind: 'exit', ...decodeExit(payload) };
        return;
      case AgentToken.HELD:
        if ((this.protocolVersion ?? 0) < HELD_VERSION) throw new ProtocolError(`HLD needs protocol version ${HELD_VERSION}`);
        this.leaderExit ??= decodeHeld(payload);
        this.emit('output-held', this.leaderExit);
        return;
      case AgentToken.PONG:
        decodePong(payload);
        this.outcome = {
          kind: 'pong',
          rttMs: Date.now() - this.readyAt,
          connectMs: this.readyAt - this.startedAt,
          certificateExpires: this.agent?.certificateExpires,
        };
        return;
      default:
        throw new ProtocolError(`unexpected ${token} message from the agent`);
    }
  }

  // The agent has taken the request: from now on the command's time limit applies, and
  // the agent's keepalives tell a quiet command from a lost connection.
  private commandStarted(keepaliveSeconds: number): void {
    this.clearTimer();
    if (this.request.argv.length === 0 && !this.request.copy && !this.request.fetch) return; // a ping: PON follows at once
    if (this.limits.commandTimeoutMs > 0) {
      this.armTimer(this.limits.commandTimeoutMs + TIMEOUT_MARGIN_MS, () =>
        this.abort(ErrorCodes.TIMEOUT, 'timed out, and the agent did not report the command stopped'),
      );
    }
    if (keepaliveSeconds > 0) {
      this.keepalive = new Keepalive(keepaliveSeconds * 1000, {
        send: () => this.transport.write(encodeFrame(ClientToken.KEEPALIVE)),
        lost: (limitMs) =>
          this.abort(ErrorCodes.DISCONNECTED, `connection lost: no word from the agent for ${limitMs / 1000} s (host down or network cut)`),
      });
      this.keepalive.start();
    }
  }

  private onFailure(err: Error): void {
    if (this.outcome) return;
    this.outcome = { kind: 'error', ...this.transport.describeFailure(err, this.versionAgreed) };
  }

  private onClose(): void {
    this.clearTimer();
    this.keepalive?.stop();
    // Output still buffered in the decoder can only be a truncated frame: nothing to show.
    const outcome: HostOutcome = this.outcome ?? {
      kind: 'error',
      code: ErrorCodes.DISCONNECTED,
      message: this.versionAgreed
        ? 'connection closed before the command finished'
        : 'agent closed the connection during the handshake (it may be dropping connections: too many not yet in a session)',
    };
    // What the agent says about itself (its failure reason, its version) reaches terminals,
    // summaries, JSON and run records: never with controls that could talk to a terminal.
    const result: HostResult = {
      target: this.target,
      outcome: outcome.kind === 'error' ? { ...outcome, message: visibleText(outcome.message) } : outcome,
      durationMs: Date.now() - this.startedAt,
      agentSoftware: this.agentSoftware === undefined ? undefined : visibleText(this.agentSoftware),
      protocolVersion: this.protocolVersion,
      ...(this.leaderExit ? { leaderExit: this.leaderExit } : {}),
    };
    this.emit('done', result);
    this.settle?.(result);
    this.settle = undefined;
  }

  // A stalled process runs due timers before it polls for I/O (libuv), so a timer can
  // expire in the same turn as the event it waits for (the TCP connect, the agent's VER):
  // expiry waits for one more poll, and counts only if nothing replaced or cleared it.
  private armTimer(ms: number, onExpiry: () => void): void {
    this.clearTimer();
    const timer = setLongTimeout(
      () =>
        setImmediate(() => {
          if (this.timer === timer) onExpiry();
        }),
      ms,
    );
    this.timer = timer;
  }

  private clearTimer(): void {
    this.timer?.clear();
    this.timer = undefined;
  }
}
