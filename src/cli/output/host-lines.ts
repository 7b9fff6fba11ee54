// `distrun hosts` and --dry-run: one line per host, name and the address:port dialled (or
// `broker` for a host reached through the brokers, by its name).
import { dialAddress, throughBroker } from '../targeting/host-label.js';
import type { Target } from '../targeting/model.js';

/** What `distrun hosts` shows in place of an address for a host reached through a broker. */
const THROUGH_BROKER = 'broker';

/** `state`, when given, is one more column after the way to the host (`--discover`: whether it answered). */
export function writeHostLines(targets: readonly Target[], out: NodeJS.WritableStream, explain: boolean, state?: (t: Target) => string): void {
  if (targets.length === 0) return;
  const width = Math.max(...targets.map((t) => t.name.length));
  const reached = (t: Target): string => (throughBroker(t) ? THROUGH_BROKER : dialAddress(t));
  const why = (t: Target): string => [t.via, t.reach ? `${t.reach.through}: ${t.reach.by}` : undefined].filter(Boolean).join('; ');
  const columns = (t: Target): string[] => [reached(t), ...(state ? [state(t)] : []), ...(explain ? [why(t)] : [])];
  const widths = columns(targets[0]!).map((_, i) => Math.max(...targets.map((t) => columns(t)[i]!.length)));
  for (const t of targets) {
    const line = [t.name.padEnd(width), ...columns(t).map((text, i) => text.padEnd(widths[i]!))].join('  ');
    out.write(`${line.trimEnd()}\n`);
  }
}
