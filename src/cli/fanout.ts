// Runs sessions on many hosts with at most `fanout` in flight, starting the next host
// as soon as one finishes. Results come back in target order.
import { ErrorCodes } from '../errors.js';
import type { HostResult, HostSession } from './host-session.js';
import type { Target } from './inventory.js';

export interface FanoutHooks {
  onStart(session: HostSession): void;
  onDone(result: HostResult): void;
}

export class Fanout {
  readonly running = new Set<HostSession>();
  private stopped = false;
  private next = 0;

  constructor(
    private readonly targets: readonly Target[],
    private readonly fanout: number,
    private readonly createSession: (target: Target) => HostSession,
    private readonly hooks: FanoutHooks,
  ) {}

  run(): Promise<HostResult[]> {
    const results: HostResult[] = new Array(this.targets.length);
    let finished = 0;
    return new Promise((resolve) => {
      const startNext = (): void => {
        while (!this.stopped && this.running.size < this.fanout && this.next < this.targets.length) {
          const index = this.next++;
          const session = this.createSession(this.targets[index]!);
          this.running.add(session);
          const outcome = session.run(); // sends the request first: onStart may send input
          this.hooks.onStart(session);
          void outcome.then((result) => {
            this.running.delete(session);
            record(index, result);
            startNext();
          });
        }
        if (this.stopped) {
          // Hosts never started are reported, so the summary accounts for every target.
          while (this.next < this.targets.length) {
            const index = this.next++;
            record(index, {
              target: this.targets[index]!,
              outcome: { kind: 'error', code: ErrorCodes.INTERRUPTED, message: 'not started: interrupted' },
              durationMs: 0,
              agentSoftware: undefined,
              protocolVersion: undefined,
            });
          }
        }
      };
      const record = (index: number, result: HostResult): void => {
        results[index] = result;
        this.hooks.onDone(result);
        if (++finished === this.targets.length) resolve(results);
      };
      if (this.targets.length === 0) resolve(results);
      startNext();
    });
  }

  /**
   * Starts no further hosts; the running ones go on. The next host to finish reports
   * the unstarted ones (there is always one running while any target is pending).
   */
  stop(): void {
    this.stopped = true;
  }
}
