// `distrun hosts`: the hosts a selection resolves to, one per line.
import { routeTargets } from '../execution/broker-route.js';
import { writeHostLines } from '../output/host-lines.js';
import { resolveSelection, type SelectionOptions } from '../targeting/select.js';

/** One line per host: name, the address:port dialled, and with `explain` what selected it. */
export function listHosts(
  opts: SelectionOptions & { explain?: boolean },
  out: NodeJS.WritableStream = process.stdout,
  err: NodeJS.WritableStream = process.stderr,
): number {
  const { inventory, targets: selected } = resolveSelection(opts);
  // As a run would reach them ($DISTRUN_BROKER included; hosts has no --broker).
  const { targets } = routeTargets(selected, {});
  writeHostLines(targets, out, opts.explain === true);
  // Which reader took an Ansible inventory (distrun's own, or Ansible's ansible-inventory):
  // on stderr, so that stdout stays one line per host.
  if (opts.explain && inventory?.ansible) err.write(`distrun: inventory ${inventory.file}: read by ${inventory.ansible.reader}\n`);
  return 0;
}
