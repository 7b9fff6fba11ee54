// The one place where outcomes and errors become exit codes (documented in README.md).
import { CommanderError } from 'commander';
import { isDistRunError, messageOf } from '../errors.js';

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

/** Message and exit code for an error that stops distrun itself. */
export function fatalError(err: unknown): { message: string; exitCode: number } {
  if (err instanceof CommanderError) return { message: '', exitCode: err.exitCode === 0 ? 0 : ExitCode.CANNOT_RUN };
  if (isDistRunError(err)) return { message: err.message, exitCode: ExitCode.CANNOT_RUN };
  // Not a user mistake: keep the stack for the bug report.
  return { message: `internal error: ${err instanceof Error && err.stack ? err.stack : messageOf(err)}`, exitCode: ExitCode.CANNOT_RUN };
}
