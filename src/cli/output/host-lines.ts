// `distrun hosts` and --dry-run: one line per host, name and the address:port dialled (or
// `broker` for a host reached through the brokers, by its name).
import { dialAddress, throughBroker } from '../targeting/host-label.js';
import type { Target } from '../targeting/model.js';

/** What `distrun hosts` shows in place of an address for a host reached through a broker. */
const THROUGH_BROKER = 'broker';

export function writeHostLines(targets: readonly Target[], out: NodeJS.WritableStream, explain: boolean): void {
  const width = Math.max(...targets.map((t) => t.name.length));
  const reached = (t: Target): string => (throughBroker(t) ? THROUGH_BROKER : dialAddress(t));
  const why = (t: Target): string => [t.via, t.reach ? `${t.reach.through}: ${t.reach.by}` : undefined].filter(Boolean).join('; ');
  const dialWidth = Math.max(...targets.map((t) => reached(t).length));
  for (const t of targets) {
    const line = `${t.name.padEnd(width)}  ${explain ? `${reached(t).padEnd(dialWidth)}  ${why(t)}` : reached(t)}`;
    out.write(`${line.trimEnd()}\n`);
  }
}
