// `distrun hosts` and --dry-run: one line per host, name and the address:port dialled.
import { dialAddress } from '../targeting/host-label.js';
import type { Target } from '../targeting/model.js';

export function writeHostLines(targets: readonly Target[], out: NodeJS.WritableStream, explain: boolean): void {
  const width = Math.max(...targets.map((t) => t.name.length));
  const dialWidth = Math.max(...targets.map((t) => dialAddress(t).length));
  for (const t of targets) {
    const line = `${t.name.padEnd(width)}  ${explain ? `${dialAddress(t).padEnd(dialWidth)}  ${t.via ?? ''}` : dialAddress(t)}`;
    out.write(`${line.trimEnd()}\n`);
  }
}
