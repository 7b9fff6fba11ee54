// A Session (execution/session.ts) for in-memory tests of the scheduler and the renderers:
// it emits what the test tells it to, counts pauses, and ends when the test ends it.
import { EventEmitter } from 'node:events';
import type { Session, SessionEvents } from '../../src/cli/execution/session.js';
import type { HostOutcome, HostResult } from '../../src/cli/execution/outcome.js';
import type { Target } from '../../src/cli/targeting/model.js';

export const target = (name: string, port = 6790): Target => ({ name, address: name, port });

export const result = (t: Target, outcome: HostOutcome = { kind: 'exit', code: 0, timedOut: false }): HostResult => ({
  target: t,
  outcome,
  durationMs: 1,
  agentSoftware: 'distrunner-agent/test',
  protocolVersion: 4,
});

export class FakeSession extends EventEmitter<SessionEvents> implements Session {
  readonly input: Buffer[] = [];
  inputEnded = false;
  signals: string[] = [];
  paused = false;
  pauses = 0;
  private settle: ((r: HostResult) => void) | undefined;

  constructor(readonly target: Target) {
    super();
  }

  run(): Promise<HostResult> {
    return new Promise((resolve) => {
      this.settle = resolve;
    });
  }

  sendInput(...parts: Buffer[]): boolean {
    this.input.push(Buffer.concat(parts));
    return true;
  }

  endInput(): void {
    this.inputEnded = true;
  }

  resize(): void {}

  signal(name: NodeJS.Signals): void {
    this.signals.push(name);
  }

  abort(): void {}

  pause(): void {
    this.paused = true;
    this.pauses += 1;
  }

  resume(): void {
    this.paused = false;
  }

  /** Ends the host as a HostSession does: `done`, then run() resolves. */
  end(outcome?: HostOutcome): HostResult {
    const r = result(this.target, outcome);
    this.emit('done', r);
    this.settle?.(r); // run() is called by the scheduler; renderer tests do not start one
    return r;
  }
}
