// How a run went, by class of outcome, with folded host lists: what the user reads last.
import { ErrorCodes } from '../errors.js';
import { PLAIN, type Palette } from './colors.js';
import { describeOutcome } from './exit-codes.js';
import { foldHosts } from './host-range.js';
import type { LeaderExit } from '../protocol/messages.js';
import { count } from './plural.js';
import type { HostOutcome, HostResult } from './host-session.js';

export type OutcomeClass = 'ok' | 'failed' | 'timeout' | 'unreachable' | 'error' | 'skipped';

const CLASS_ORDER: readonly OutcomeClass[] = ['ok', 'failed', 'timeout', 'unreachable', 'error', 'skipped'];
const CLASS_LABEL: Record<OutcomeClass, string> = {
  ok: 'ok', failed: 'failed', timeout: 'timed out', unreachable: 'unreachable', error: 'refused or broken', skipped: 'not started',
};

/** ok; failed (ran, non-zero or killed); timeout; unreachable (no connection); error (refused, protocol, ...); skipped (never started). */
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
      if (outcome.code === ErrorCodes.CONNECT || outcome.code === ErrorCodes.DISCONNECTED) return 'unreachable';
      if (outcome.code === ErrorCodes.SKIPPED) return 'skipped';
      return 'error';
  }
}

/**
 * A host whose command exited while a process it left behind (`daemon &`) holds its
 * output open: distrun waits for that output to end, as ssh does, and says why.
 */
export function heldOpenNote(leader: LeaderExit): string {
  return `command exited ${leader.code !== undefined ? `with code ${leader.code}` : `by ${leader.signal}`}, output held open by a background process`;
}

/**
 * Nothing when every host is ok; otherwise the counts per class and, per distinct
 * reason, the folded list of hosts it applies to:
 *   distrun: 6 hosts: 2 ok, 2 failed, 1 timed out, 1 unreachable
 *     exit code 3: web[03,05]
 */
export function formatSummary(results: readonly HostResult[], palette: Palette = PLAIN): string | undefined {
  const byClass = new Map<OutcomeClass, number>();
  const byReason = new Map<string, { cls: OutcomeClass; hosts: string[] }>();
  for (const { target, outcome, leaderExit } of results) {
    const cls = classify(outcome);
    byClass.set(cls, (byClass.get(cls) ?? 0) + 1);
    if (cls === 'ok') continue;
    const reason = leaderExit ? `${describeOutcome(outcome)} (${heldOpenNote(leaderExit)})` : describeOutcome(outcome);
    const entry = byReason.get(reason) ?? { cls, hosts: [] };
    entry.hosts.push(target.name);
    byReason.set(reason, entry);
  }
  if (byReason.size === 0) return undefined;
  const counts = CLASS_ORDER.filter((c) => byClass.has(c)).map((c) => `${byClass.get(c)} ${CLASS_LABEL[c]}`);
  const lines = [`distrun: ${palette.strong(`${count(results.length, 'host')}: ${counts.join(', ')}`)}`];
  const reasons = [...byReason.entries()].sort(([, a], [, b]) =>
    CLASS_ORDER.indexOf(a.cls) - CLASS_ORDER.indexOf(b.cls) || b.hosts.length - a.hosts.length);
  for (const [reason, { hosts }] of reasons) lines.push(`  ${palette.failure(`${reason}:`)} ${foldHosts(hosts)}`);
  return `${lines.join('\n')}\n`;
}
