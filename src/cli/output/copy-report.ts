// How a copy or a fetch went, per entry, per host and in all: a line for each entry
// written or refused, a line per host at its end, and the summary with folded host lists.
//   web1: changed /etc/app.conf                 web1: fetched /var/log/app.log
//   web3: failed /etc/app.conf: permission denied
//   distrun: 3 hosts: 1 changed, 1 unchanged, 1 failed
import { ExitCode } from '../exit-codes.js';
import { classify, describeOutcome, hostExitCode, type OutcomeClass } from '../execution/outcome.js';
import type { TransferReport } from '../execution/transfer-run.js';
import type { EntryResult } from '../../protocol/file-messages.js';
import { count } from '../plural.js';
import { foldHosts } from '../targeting/host-range.js';
import { hostLabel } from '../targeting/host-label.js';
import { visibleText } from '../terminal-text.js';
import { paletteFor } from './colors.js';
import { JsonEvents } from './json.js';
import { writeTo, type OutputStreams } from './renderers.js';
import type { Target } from '../targeting/model.js';

/** One entry as reports show it: a copy's (changed, unchanged, failed) or a fetch's (fetched, failed, with where it went). */
type ReportedEntry = Pick<EntryResult, 'path' | 'what' | 'reason' | 'code' | 'size' | 'sha256' | 'previous'> & {
  outcome: EntryResult['outcome'] | 'fetched';
  /** A fetched file's local path. */
  local?: string;
};
/** One host's copy or fetch. */
type HostReport = TransferReport<ReportedEntry>;

type TransferKind = 'copy' | 'fetch';
/** What an ok host's entries can be, per kind. */
const OK_OUTCOMES: Record<TransferKind, readonly ReportedEntry['outcome'][]> = { copy: ['changed', 'unchanged'], fetch: ['fetched'] };

type CopyClass = 'changed' | 'unchanged' | 'fetched' | 'failed' | Exclude<OutcomeClass, 'ok' | 'failed'>;
const ORDER: readonly CopyClass[] = ['changed', 'unchanged', 'fetched', 'failed', 'timeout', 'unreachable', 'error', 'skipped'];
const LABEL: Record<CopyClass, string> = {
  changed: 'changed',
  fetched: 'fetched',
  unchanged: 'unchanged',
  failed: 'failed',
  timeout: 'timed out',
  unreachable: 'unreachable',
  error: 'refused or broken',
  skipped: 'not started',
};

const isOk = (cls: CopyClass): cls is 'changed' | 'unchanged' | 'fetched' => cls === 'changed' || cls === 'unchanged' || cls === 'fetched';

/** A host's class and, unless it was ok (changed, unchanged, fetched), why. */
function copyOutcome(report: HostReport): { cls: CopyClass; reason?: string } {
  const { outcome } = report.result;
  const cls = classify(outcome);
  const failed = report.entries.filter((e) => e.outcome === 'failed');
  if (cls === 'ok' && report.entries.some((e) => e.outcome === 'fetched')) return { cls: 'fetched' };
  if (cls === 'ok') return { cls: report.entries.some((e) => e.outcome === 'changed') ? 'changed' : 'unchanged' };
  if (cls === 'failed' && outcome.kind === 'exit' && outcome.code === 1 && failed.length > 0) {
    const first = failed[0]!;
    const more = failed.length > 1 ? ` (and ${count(failed.length - 1, 'more entry', 'more entries')})` : '';
    return { cls: 'failed', reason: `${first.path}: ${first.reason}${more}` };
  }
  if (cls === 'failed') {
    const said = report.stderr.trim().split('\n').pop();
    return { cls: 'failed', reason: said ? visibleText(said) : `the agent's file program ended with ${describeOutcome(outcome)}` };
  }
  return { cls, reason: describeOutcome(outcome) };
}

/** A host's copy or fetch as runs count it (changed, unchanged and fetched are ok), for the exit code and the run record. */
export function copyHostStatus(report: HostReport): { status: OutcomeClass; exitCode: number; reason: string | undefined } {
  const { cls, reason } = copyOutcome(report);
  if (isOk(cls)) return { status: 'ok', exitCode: ExitCode.OK, reason };
  if (cls === 'failed') return { status: 'failed', exitCode: 1, reason };
  return { status: cls, exitCode: hostExitCode(report.result.outcome), reason };
}

/** 0 when every host was ok (changed, unchanged, fetched); 1 when some failed; 124 timed out; 255 when any could not be reached or refused. */
export function copyExitCode(reports: readonly HostReport[], interrupted: boolean): number {
  if (interrupted) return ExitCode.INTERRUPTED;
  let worst: number = ExitCode.OK;
  for (const report of reports) {
    const { exitCode } = copyHostStatus(report);
    if (exitCode === ExitCode.CANNOT_RUN) return exitCode;
    worst = Math.max(worst, exitCode);
  }
  return worst;
}

/** What hears a copy or a fetch as it happens: the lines on the screen, or JSON events. */
export interface CopyReporter {
  hostStarted(target: Target): void;
  entry(host: string, entry: ReportedEntry): void;
  hostDone(report: HostReport): void;
  finish(reports: readonly HostReport[], exitCode: number): void;
}

/** The lines on the screen, for a copy or a fetch. */
export class CopyLines implements CopyReporter {
  hostStarted(): void {}

  constructor(
    private readonly io: OutputStreams,
    private readonly quiet: boolean,
    private readonly kind: TransferKind = 'copy',
  ) {}

  /** One entry's result as soon as it is known: changed or fetched ones on stdout, failed ones on stderr. */
  entry(host: string, entry: ReportedEntry): void {
    const palette = paletteFor(this.io.stdout);
    const path = visibleText(entry.path);
    if ((entry.outcome === 'changed' || entry.outcome === 'fetched') && !this.quiet) {
      const what = entry.what === 'mode' ? ' (mode)' : '';
      writeTo(this.io, 'stdout', `${palette.host(`${host}:`)} ${entry.outcome} ${path}${what}\n`);
    } else if (entry.outcome === 'failed') {
      writeTo(this.io, 'stderr', `${paletteFor(this.io.stderr).failure(`${host}: failed ${path}: ${visibleText(entry.reason ?? '')}`)}\n`);
    }
  }

  /** A host's end: what it came to, in one line (a host that could not be reached says why). */
  hostDone(report: HostReport): void {
    const { cls, reason } = copyOutcome(report);
    const name = report.result.target.name;
    if (isOk(cls)) {
      if (this.quiet) return;
      const tally = OK_OUTCOMES[this.kind].map((o) => [o, report.entries.filter((e) => e.outcome === o).length] as const).filter(([, n]) => n > 0);
      const detail = tally.map(([o, n]) => `${n} ${o}`).join(', ');
      writeTo(this.io, 'stdout', `${paletteFor(this.io.stdout).host(`${name}:`)} ${cls} (${detail || `nothing to ${this.kind}`})\n`);
    } else if (cls !== 'failed') {
      writeTo(this.io, 'stderr', `distrun: ${paletteFor(this.io.stderr).failure(`${hostLabel(report.result.target)}: ${reason}`)}\n`);
    }
  }

  finish(reports: readonly HostReport[]): void {
    writeCopySummary(this.io, reports);
  }
}

/**
 * `--json` for a copy or a fetch (docs/json-events.md): `start`, one `file` event per
 * entry, the host's end event with its counts, and the `summary`; the summary for people
 * on stderr.
 */
export class CopyJson implements CopyReporter {
  private readonly events: JsonEvents;

  constructor(
    private readonly io: OutputStreams,
    private readonly kind: TransferKind = 'copy',
  ) {
    this.events = new JsonEvents(io);
  }

  hostStarted(target: Target): void {
    this.events.hostStarted(target);
  }

  entry(host: string, entry: ReportedEntry): void {
    const { path, outcome, what, sha256, previous, size, code, reason, local } = entry;
    const failure = outcome === 'failed' ? { code: code ?? null, message: reason } : {};
    if (this.kind === 'fetch') {
      this.events.emit('file', { host, path, outcome, local: local ?? null, size: size ?? null, sha256: sha256 ?? null, ...failure });
      return;
    }
    this.events.emit('file', {
      host,
      path,
      outcome,
      what: what ?? null,
      size: size ?? null,
      sha256: sha256 ?? null,
      previous: previous ?? null,
      ...failure,
    });
  }

  hostDone(report: HostReport): void {
    const { cls } = copyOutcome(report);
    const tally = (o: string) => report.entries.filter((e) => e.outcome === o).length;
    const reached = isOk(cls) || cls === 'failed';
    const counts = Object.fromEntries([...OK_OUTCOMES[this.kind], 'failed'].map((o) => [o, tally(o)]));
    this.events.hostDone(report.result, reached ? counts : {}, reached ? (cls === 'failed' ? 'failed' : 'ok') : undefined);
  }

  finish(reports: readonly HostReport[], exitCode: number): void {
    const classes = reports.map((r) => copyOutcome(r).cls);
    const hosts = Object.fromEntries(OK_OUTCOMES[this.kind].map((o) => [o, classes.filter((c) => c === o).length]));
    this.events.summary(
      reports.map((r) => r.result),
      exitCode,
      hosts,
    );
    writeCopySummary(this.io, reports);
  }
}

/** The summary, always: counts per class, and per reason the hosts it applies to. */
function writeCopySummary(io: OutputStreams, reports: readonly HostReport[]): void {
  const palette = paletteFor(io.stderr);
  const byClass = new Map<CopyClass, number>();
  const byReason = new Map<string, { cls: CopyClass; hosts: string[] }>();
  for (const report of reports) {
    const { cls, reason } = copyOutcome(report);
    byClass.set(cls, (byClass.get(cls) ?? 0) + 1);
    if (reason === undefined) continue;
    const entry = byReason.get(reason) ?? { cls, hosts: [] };
    entry.hosts.push(report.result.target.name);
    byReason.set(reason, entry);
  }
  const counts = ORDER.filter((c) => byClass.has(c)).map((c) => `${byClass.get(c)} ${LABEL[c]}`);
  const lines = [`distrun: ${palette.strong(`${count(reports.length, 'host')}: ${counts.join(', ')}`)}`];
  const reasons = [...byReason.entries()].sort(([, a], [, b]) => ORDER.indexOf(a.cls) - ORDER.indexOf(b.cls) || b.hosts.length - a.hosts.length);
  for (const [reason, { hosts }] of reasons) lines.push(`  ${palette.failure(`${reason}:`)} ${foldHosts(hosts)}`);
  writeTo(io, 'stderr', `${lines.join('\n')}\n`);
}
