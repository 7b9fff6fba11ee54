// How a run went, by class of outcome, with folded host lists: what the user reads last.
import { PLAIN, type Palette } from './colors.js';
import { CLASS_LABEL, CLASS_ORDER, classify, describeOutcome, type HostResult, type OutcomeClass } from '../execution/outcome.js';
import { foldHosts } from '../targeting/host-range.js';
import type { LeaderExit } from '../../protocol/messages.js';
import { count } from '../plural.js';

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
  const reasons = [...byReason.entries()].sort(
    ([, a], [, b]) => CLASS_ORDER.indexOf(a.cls) - CLASS_ORDER.indexOf(b.cls) || b.hosts.length - a.hosts.length,
  );
  for (const [reason, { hosts }] of reasons) lines.push(`  ${palette.failure(`${reason}:`)} ${foldHosts(hosts)}`);
  return `${lines.join('\n')}\n`;
}
