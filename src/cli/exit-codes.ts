// The one place where outcomes and errors become exit codes (documented in README.md).
import { constants } from 'node:os';
import { CommanderError } from 'commander';
import { ErrorCodes, isDistRunError, messageOf } from '../errors.js';
import type { HostOutcome, HostResult } from './host-session.js';

export const ExitCode = {
  OK: 0,
  /** A command reached its time limit (as timeout(1) reports it). */
  TIMEOUT: 124,
  /** The user interrupted distrun (128 + SIGINT). */
  INTERRUPTED: 130,
  /** distrun's output went to a reader that closed it (128 + SIGPIPE). */
  BROKEN_PIPE: 141,
  /** distrun itself failed, or a host could not run the command (as ssh reports it). */
  CANNOT_RUN: 255,
} as const;

/** The exit code one host contributes. */
export function hostExitCode(outcome: HostOutcome): number {
  if (outcome.kind === 'pong') return ExitCode.OK;
  if (outcome.kind === 'exit') {
    if (outcome.timedOut) return ExitCode.TIMEOUT;
    if (outcome.signal !== undefined) return 128 + (constants.signals[outcome.signal as NodeJS.Signals] ?? 0);
    return outcome.code;
  }
  if (outcome.code === ErrorCodes.SPAWN && outcome.exitCode !== undefined) return outcome.exitCode;
  if (outcome.code === ErrorCodes.TIMEOUT) return ExitCode.TIMEOUT;
  // Never started (--max-fail, Ctrl-C): the hosts that caused the stop set the exit code.
  if (outcome.code === ErrorCodes.SKIPPED) return ExitCode.OK;
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

/** Message and exit code for an error that stops distrun itself. */
export function fatalError(err: unknown): { message: string; exitCode: number } {
  if (err instanceof CommanderError) return { message: '', exitCode: err.exitCode === 0 ? 0 : ExitCode.CANNOT_RUN };
  if (isDistRunError(err)) return { message: err.message, exitCode: ExitCode.CANNOT_RUN };
  // Not a user mistake: keep the stack for the bug report.
  return { message: `internal error: ${err instanceof Error && err.stack ? err.stack : messageOf(err)}`, exitCode: ExitCode.CANNOT_RUN };
}

/** A short description of a host's outcome for summaries: "exit code 3", "killed by SIGKILL", ... */
export function describeOutcome(outcome: HostOutcome): string {
  if (outcome.kind === 'error') return outcome.message;
  if (outcome.kind === 'pong') return 'ok';
  if (outcome.timedOut) return 'timed out (command killed)';
  if (outcome.signal !== undefined) return `killed by ${outcome.signal}`;
  return `exit code ${outcome.code}`;
}
