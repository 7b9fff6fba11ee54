// Schedules sessions on many hosts: at most `fanout` in flight, optionally in batches
// (a batch starts when the previous one has finished, after `batchWaitMs`), and no new
// host once `maxFail` hosts have not been ok. Results come back in target order, one
// per target: hosts never started are reported as skipped, with the reason.
import { readFileSync } from 'node:fs';
import { OptionError } from '../../errors.js';
import type { Session } from './session.js';
import { classify, type HostResult } from './outcome.js';
import type { Target } from '../targeting/model.js';
import { count } from '../plural.js';

interface FanoutHooks {
  onStart(session: Session): void;
  onDone(result: HostResult): void;
}

export interface FanoutLimits {
  /** Hosts in flight at once. */
  fanout: number;
  /** Hosts per batch; Infinity = one batch of every host. */
  batchSize: number;
  /** Pause between batches. */
  batchWaitMs: number;
  /** Start no new host once this many hosts were not ok; Infinity = never stop. */
  maxFail: number;
}

export class Fanout {
  readonly running = new Set<Session>();
  private stopReason: string | undefined;
  private next = 0;
  private batchEnd = 0;
  private failures = 0;
  private batchTimer: NodeJS.Timeout | undefined;
  // Set by run(): records every target not started yet as skipped.
  private skipRemaining: () => void = () => {};

  constructor(
    private readonly targets: readonly Target[],
    private readonly limits: FanoutLimits,
    private readonly createSession: (target: Target) => Session,
    private readonly hooks: FanoutHooks,
  ) {}

  run(): Promise<HostResult[]> {
    const { targets, limits } = this;
    const results: HostResult[] = new Array(targets.length);
    let finished = 0;
    this.batchEnd = Math.min(targets.length, limits.batchSize);
    return new Promise((resolve) => {
      const record = (index: number, result: HostResult): void => {
        results[index] = result;
        this.hooks.onDone(result);
        if (classify(result.outcome) !== 'ok' && ++this.failures >= limits.maxFail) {
          this.stop(`not started: --max-fail reached (${count(this.failures, 'host')} not ok)`);
        }
        if (++finished === targets.length) resolve(results);
      };
      this.skipRemaining = () => {
        while (this.next < targets.length) {
          const index = this.next++;
          record(index, {
            target: targets[index]!,
            outcome: { kind: 'skipped', reason: this.stopReason! },
            durationMs: 0,
            agentSoftware: undefined,
            protocolVersion: undefined,
          });
        }
      };
      const startNext = (): void => {
        if (this.stopReason) return;
        while (this.running.size < limits.fanout && this.next < this.batchEnd) {
          const index = this.next++;
          const session = this.createSession(targets[index]!);
          this.running.add(session);
          const outcome = session.run(); // sends the request first: onStart may send input
          this.hooks.onStart(session);
          void outcome.then((result) => {
            this.running.delete(session);
            record(index, result);
            startNext();
          });
        }
        // A batch is over when nothing of it runs any more: the next one starts after the wait.
        if (this.running.size === 0 && this.next === this.batchEnd && this.next < targets.length && !this.batchTimer) {
          this.batchTimer = setTimeout(() => {
            this.batchTimer = undefined;
            this.batchEnd = Math.min(targets.length, this.batchEnd + limits.batchSize);
            startNext();
          }, limits.batchWaitMs);
        }
      };
      if (targets.length === 0) resolve(results);
      if (this.stopReason) this.skipRemaining();
      startNext();
    });
  }

  /** Starts no further hosts (running ones go on); the others are reported as skipped. */
  stop(reason = 'not started: interrupted'): void {
    if (this.stopReason) return;
    this.stopReason = reason;
    clearTimeout(this.batchTimer);
    this.batchTimer = undefined;
    this.skipRemaining();
  }
}

/** Descriptors left for distrun itself beyond one socket per host in flight: stdio, files, the event loop. */
const RESERVED_DESCRIPTORS = 32;

/**
 * The fanout that fits the open-files limit (`ulimit -n`): every host in flight holds one
 * socket, and Node cannot raise the limit itself. A larger fanout is lowered, with a
 * note, rather than failing hosts with EMFILE halfway through a run.
 */
export function fanoutWithinFileLimit(requested: number, note: (message: string) => void, limitsFile = '/proc/self/limits'): number {
  let soft: number;
  try {
    const match = /^Max open files\s+(\d+|unlimited)\s/m.exec(readFileSync(limitsFile, 'utf8'));
    soft = match?.[1] === undefined || match[1] === 'unlimited' ? Infinity : Number(match[1]);
  } catch {
    return requested;
  }
  const fits = Math.max(1, soft - RESERVED_DESCRIPTORS);
  if (requested <= fits) return requested;
  note(`fanout lowered from ${requested} to ${fits}: the open-files limit is ${soft} (raise it with ulimit -n)`);
  return fits;
}

/** `N` or `N%` of `total` (at least 1); undefined when not given. */
function countOrPercent(value: string | undefined, total: number, option: string): number | undefined {
  if (value === undefined) return undefined;
  const match = /^(\d+)(%?)$/.exec(value.trim());
  const n = match ? Number(match[1]) : NaN;
  if (!match || n < 1 || (match[2] && n > 100)) {
    throw new OptionError(`${option} takes a whole number N >= 1 or a percentage N% (1-100), got '${value}'`);
  }
  return match[2] ? Math.max(1, Math.ceil((total * n) / 100)) : n;
}

/** The scheduling options every fan-out command takes (`--fanout`, `--batch`, `--batch-wait`, `--max-fail`). */
export interface ScheduleOptions {
  fanout: number;
  batch?: string;
  batchWait?: number;
  maxFail?: string;
}

/** The limits those options give for `hosts` hosts (the fanout not yet fitted to the open-files limit). */
export function scheduleFor(opts: ScheduleOptions, hosts: number): FanoutLimits {
  return {
    fanout: Math.min(opts.fanout, hosts),
    batchSize: countOrPercent(opts.batch, hosts, '--batch') ?? Infinity,
    batchWaitMs: (opts.batchWait ?? 0) * 1000,
    maxFail: countOrPercent(opts.maxFail, hosts, '--max-fail') ?? Infinity,
  };
}
