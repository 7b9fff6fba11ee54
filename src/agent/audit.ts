// The audit trail: one JSON record when a command is about to start (or is denied) and
// one when it ends, sharing an id. Written synchronously, so a record is on disk before
// the command runs. Never contains tokens, keys or stdin.
import { appendFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { DistRunError, ErrorCodes } from '../errors.js';

export interface AuditClient {
  name: string;
  serial: string;
  fingerprint: string;
}

export interface AuditRecord {
  /** `file`: one entry of a copy or a fetch, as its receiver or sender reported it (between the start and end). */
  event: 'start' | 'end' | 'denied' | 'file';
  id: string;
  session: number;
  client: AuditClient;
  peer: string;
  argv?: readonly string[];
  shell?: boolean;
  cwd?: string;
  /** Names of the environment variables the client set (never their values). */
  envNames?: readonly string[];
  runAs?: string;
  /** The command ran in a pseudo-terminal (`distrun --tty`): an interactive session. */
  pty?: boolean;
  /** A copy (`distrun copy`) instead of a command: where to, how many sources. */
  copy?: { dest: string; sources: number; preserve: boolean; backup: boolean };
  /** A fetch (`distrun fetch`) instead of a command: which paths, recursive or not, the cap. */
  fetch?: { paths: string[]; recursive: boolean; maxBytes: number };
  /** A `file` record: the entry's path on the host, what became of it (a fetch's: sent or failed), its sha256 after and before. */
  path?: string;
  outcome?: string;
  size?: number;
  sha256?: string;
  previous?: string | null;
  startTime?: string;
  endTime?: string;
  exit?: { code?: number; signal?: string; timedOut: boolean };
  bytesIn?: number;
  bytesOut?: number;
  bytesErr?: number;
  reason?: string;
}

export interface AuditSink {
  /** Throws when the record cannot be written. */
  write(record: AuditRecord): void;
}

/**
 * Audit records appended to a file of their own (created 0600). The file is opened for
 * each record, so a rotated log (logrotate's create or copytruncate) is simply followed.
 */
export class FileAuditSink implements AuditSink {
  constructor(readonly file: string) {
    try {
      appendFileSync(file, '', { mode: 0o600 });
    } catch (err) {
      throw new DistRunError(ErrorCodes.CONFIG, `cannot write audit log ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
  }

  write(record: AuditRecord): void {
    appendFileSync(this.file, `${JSON.stringify({ time: new Date().toISOString(), ...record })}\n`, { mode: 0o600 });
  }
}

/** Without an audit file, records go to the agent's log as `msg: "audit"` lines. */
export class LogAuditSink implements AuditSink {
  constructor(private readonly log: Logger) {}

  write(record: AuditRecord): void {
    this.log.info({ audit: record }, 'audit');
  }
}
