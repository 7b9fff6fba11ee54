// What a host's end means, in one place: the outcome, its class (ok, failed, ...), the exit
// code it contributes and its description. The scheduler, the renderers, the summary and the
// run records all read outcomes here, so none of them depends on another for it.
import { constants } from 'node:os';
import { ErrorCodes, type ErrorCode } from '../../errors.js';
import type { LeaderExit } from '../../protocol/messages.js';
import { ExitCode } from '../exit-codes.js';
import type { Target } from '../targeting/model.js';

/** How one host's run ended. */
export type HostOutcome =
  | { kind: 'exit'; code: number; signal?: undefined; timedOut: boolean }
  | { kind: 'exit'; code?: undefined; signal: string; timedOut: boolean }
  /** Answer to a ping: the session would have been accepted. */
  | { kind: 'pong'; rttMs: number; connectMs: number; certificateExpires: Date | undefined }
  /** The command never ran or its result was lost; `exitCode` is set when the agent named one. */
  | { kind: 'error'; code: ErrorCode | string; message: string; exitCode?: number }
  /** Never started (--max-fail reached, Ctrl-C): `reason` says which. */
  | { kind: 'skipped'; reason: string };

export interface HostResult {
  target: Target;
  outcome: HostOutcome;
  durationMs: number;
  agentSoftware: string | undefined;
  /** The protocol version agreed with the agent. */
  protocolVersion: number | undefined;
  /** Set when the agent said the command exited so, while processes it left behind held its output open. */
  leaderExit?: LeaderExit;
}

export type OutcomeClass = 'ok' | 'failed' | 'timeout' | 'unreachable' | 'error' | 'skipped';

export const CLASS_ORDER: readonly OutcomeClass[] = ['ok', 'failed', 'timeout', 'unreachable', 'error', 'skipped'];
export const CLASS_LABEL: Record<OutcomeClass, string> = {
  ok: 'ok',
  failed: 'failed',
  timeout: 'timed out',
  unreachable: 'unreachable',
  error: 'refused or broken',
  skipped: 'not started',
};

/** ok; failed (ran, non-zero or killed); timeout; unreachable (no connection); error (refused, protocol, ...); skipped (never started). */
/** Not reached, or lost on the way: no connection, a connection that broke, no agent of that name at the broker, or the broker link itself. */
const UNREACHABLE = new Set<string>([ErrorCodes.CONNECT, ErrorCodes.DISCONNECTED, ErrorCodes.OFFLINE, ErrorCodes.BROKER]);

export function classify(outcome: HostOutcome): OutcomeClass {
  switch (outcome.kind) {
    case 'pong':
      return 'ok';
    case 'exit':
      if (outcome.timedOut) return 'timeout';
      return outcome.code === 0 ? 'ok' : 'failed';
    case 'error':
      if (outcome.code === ErrorCodes.SPAWN) return 'failed';
      if (outcome.code === ErrorCodes.TIMEOUT) return 'timeout';
      if (UNREACHABLE.has(outcome.code)) return 'unreachable';
      return 'error';
    case 'skipped':
      return 'skipped';
  }
}

/** Why the command did not run or its result was lost; undefined when it exited (or answered a ping). */
export function failureReason(outcome: HostOutcome): string | undefined {
  if (outcome.kind === 'error') return outcome.message;
  if (outcome.kind === 'skipped') return outcome.reason;
  return undefined;
}

/** The exit code one host contributes. */
export function hostExitCode(outcome: HostOutcome): number {
  // Never started: the hosts that caused the stop set the exit code.
  if (outcome.kind === 'pong' || outcome.kind === 'skipped') return ExitCode.OK;
  if (outcome.kind === 'exit') {
    if (outcome.timedOut) return ExitCode.TIMEOUT;
    if (outcome.signal !== undefined) return 128 + (constants.signals[outcome.signal as NodeJS.Signals] ?? 0);
    return outcome.code;
  }
  if (outcome.code === ErrorCodes.SPAWN && outcome.exitCode !== undefined) return outcome.exitCode;
  if (outcome.code === ErrorCodes.TIMEOUT) return ExitCode.TIMEOUT;
  return ExitCode.CANNOT_RUN;
}

/** 255 if any host could not run the command, else the largest host exit code; 130 if interrupted. */
export function runExitCode(results: readonly HostResult[], interrupted: boolean): number {
  if (interrupted) return ExitCode.INTERRUPTED;
  let worst: number = ExitCode.OK;
  for (const { outcome } of results) {
    const code = hostExitCode(outcome);
    if (code === ExitCode.CANNOT_RUN) return code;
    worst = Math.max(worst, code);
  }
  return worst;
}

/** A short description of a host's outcome for summaries: "exit code 3", "killed by SIGKILL", ... */
export function describeOutcome(outcome: HostOutcome): string {
  if (outcome.kind === 'error' || outcome.kind === 'skipped') return failureReason(outcome)!;
  if (outcome.kind === 'pong') return 'ok';
  if (outcome.timedOut) return 'timed out (command killed)';
  if (outcome.signal !== undefined) return `killed by ${outcome.signal}`;
  return `exit code ${outcome.code}`;
}
