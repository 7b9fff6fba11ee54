// How a host session reaches its agent. HostSession holds the protocol's rules (frames,
// options, exit statuses, keepalives, timers, flow control) once; a transport only carries
// bytes to one verified agent and says, in the user's words, what went wrong on the way.
// Mutual TLS straight to the agent (tls-transport.ts) is one; a message broker is another.
import type { ErrorCode } from '../../errors.js';

/** What the transport tells its session, in this order: ready, then data, then closed once (failed before closed, if at all). */
export interface TransportHandlers {
  /** The agent is verified: frames may flow. Nothing may be sent before this. */
  ready(peer: VerifiedAgent): void;
  data(chunk: Buffer): void;
  /** The connection failed; `closed` follows. */
  failed(err: Error): void;
  /** What write() could not take at once has gone out: write more. */
  drain(): void;
  closed(): void;
}

export interface VerifiedAgent {
  /** When the agent's certificate expires (a ping reports it). */
  certificateExpires: Date;
}

export interface ConnectionProblem {
  code: ErrorCode;
  message: string;
}

export interface Transport {
  /** Starts connecting; every later event reaches `handlers`. */
  open(handlers: TransportHandlers): void;
  /** Writes the parts in order, as one piece where the transport can; false: its buffer is full, wait for `drain`. */
  write(...parts: Buffer[]): boolean;
  /** Stop reading (and let the agent feel it); resume() reads again. */
  pause(): void;
  resume(): void;
  /** Ends the connection at once, without a closing exchange; `closed` follows. */
  destroy(): void;
  /** What a failure means to the user; `agentAnswered` says whether the agent's VER had come. */
  describeFailure(err: Error, agentAnswered: boolean): ConnectionProblem;
  /** What it means that the agent did not answer within `limit` (e.g. "10 s"), by the step the connection reached. */
  describeSilence(limit: string): ConnectionProblem;
}
