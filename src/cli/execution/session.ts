// One host's session as the rest of distrun drives it: the scheduler starts it and waits
// for its result, the input broadcast feeds it, the renderers hear its output and hold
// it when a sink is full. HostSession (mutual TLS to an agent) is today's implementation;
// a second transport is another one.
import type { EventEmitter } from 'node:events';
import type { ErrorCode } from '../../errors.js';
import type { LeaderExit, WindowSize } from '../../protocol/messages.js';
import type { Target } from '../targeting/model.js';
import type { HostResult } from './outcome.js';

export interface SessionEvents {
  stdout: [Buffer];
  stderr: [Buffer];
  /** The command exited, but processes it left behind hold its output open (protocol 4). */
  'output-held': [LeaderExit];
  /** The session is over; emitted just before run() resolves. */
  done: [HostResult];
  /** Input that sendInput() could not hand on at once has gone out. */
  'input-drain': [];
}

export interface Session extends EventEmitter<SessionEvents> {
  readonly target: Target;
  /** Connects, sends the request and settles on the host's one result (it never rejects). */
  run(): Promise<HostResult>;
  /** false: the connection is full; wait for `input-drain` before sending much more (a copy's data does; stdin may not). */
  sendInput(...parts: Buffer[]): boolean;
  endInput(): void;
  /** The local terminal's new size (`--tty`). */
  resize(size: WindowSize): void;
  signal(name: NodeJS.Signals): void;
  /** Stop reading the host's output (local output is backed up); the command is then paused. */
  pause(): void;
  resume(): void;
  /** Gives up on the host; the command is stopped. */
  abort(code: ErrorCode, message: string): void;
}
