// The audit records of one session (audit.ts has the format and the sinks): `start`
// before its command runs, one `end` sharing its id, or `denied` for a refused command.
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { messageOf } from '../errors.js';
import type { EntryResult } from '../protocol/file-messages.js';
import type { ExitStatus } from '../protocol/messages.js';
import type { AuditClient, AuditRecord, AuditSink } from './audit.js';
import type { CommandAuditFields } from './command-admission.js';

/** Whose session it is, as every record names it. */
interface AuditedSession {
  session: number;
  client: AuditClient;
  peer: string;
}

/** Bytes the command read and wrote, for the `end` record. */
export interface CommandTraffic {
  bytesIn: number;
  bytesOut: number;
  bytesErr: number;
}

/** A `file` record's fields: a receiver's FIL, or what a sender sent (outcome `sent`). */
type FileAuditFields = Pick<EntryResult, 'path' | 'size' | 'sha256' | 'previous' | 'reason'> & { outcome: EntryResult['outcome'] | 'sent' };

type StartFields = Pick<AuditRecord, 'id' | 'argv' | 'shell' | 'cwd' | 'envNames' | 'runAs' | 'pty' | 'copy' | 'fetch' | 'startTime'>;

export class SessionAudit {
  /** Set from `start` until `end`: the fields both records carry. */
  private started: StartFields | undefined;

  constructor(
    private readonly sink: AuditSink,
    private readonly who: AuditedSession,
    private readonly log: Logger,
  ) {}

  /** The id shared by the command's records (undefined before `start`). */
  get id(): string | undefined {
    return this.started?.id;
  }

  /**
   * Writes the `start` record and returns its id. Throws when it cannot be written: a
   * command that cannot be audited does not run (fail closed).
   */
  start({ argv, shell, cwd, envNames, runAs, pty, copy, fetch }: CommandAuditFields): string {
    const fields = { id: randomUUID(), argv, shell, cwd, envNames, runAs, pty, copy, fetch, startTime: new Date().toISOString() };
    this.sink.write(this.record('start', fields));
    this.started = fields;
    return fields.id;
  }

  /** A command refused by the rules (command-admission.ts); a record that cannot be written is logged as lost. */
  denied(request: CommandAuditFields, reason: string): void {
    this.write({ ...this.record('denied'), ...request, reason });
  }

  /** One entry of a copy or a fetch, as its receiver or sender reported it (the content itself is never recorded). */
  file(result: FileAuditFields): void {
    if (!this.started) return;
    const { path, outcome, size, sha256, previous, reason } = result;
    this.write({ ...this.record('file'), id: this.started.id, path, outcome, size, sha256, previous, reason });
  }

  /** The `end` record, once, and only for a command that has a `start` record. */
  end(status: ExitStatus | undefined, reason: string | undefined, traffic: CommandTraffic): void {
    if (!this.started) return;
    this.write({
      ...this.record('end', this.started),
      endTime: new Date().toISOString(),
      reason,
      exit: status && { code: status.code, signal: status.signal, timedOut: status.timedOut },
      ...traffic,
    });
    this.started = undefined;
  }

  private record(event: AuditRecord['event'], fields?: StartFields): AuditRecord {
    const {
      session,
      client: { name, serial, fingerprint },
      peer,
    } = this.who;
    return { event, id: fields?.id ?? randomUUID(), session, client: { name, serial, fingerprint }, peer, ...fields };
  }

  private write(record: AuditRecord): void {
    try {
      this.sink.write(record);
    } catch (err) {
      this.log.error({ err: messageOf(err), event: record.event }, 'audit log unavailable: record lost');
    }
  }
}
