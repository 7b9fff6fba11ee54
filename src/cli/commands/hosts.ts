// `distrun hosts`: the hosts a selection resolves to, one per line; with --discover, also
// whether each is connected to the brokers right now (best effort, broker-discovery.ts).
import { UsageError } from '../../errors.js';
import { routeTargets } from '../execution/broker-route.js';
import { ExitCode } from '../exit-codes.js';
import { writeHostLines } from '../output/host-lines.js';
import { count } from '../plural.js';
import { foldHosts } from '../targeting/host-fold.js';
import { throughBroker } from '../targeting/host-label.js';
import { resolveSelection, type SelectionOptions } from '../targeting/select.js';

export interface HostsOptions extends SelectionOptions {
  explain?: boolean;
  discover?: boolean;
  /** --broker: as for a run (broker-route.ts). */
  broker?: string;
  pki?: string;
  /** --wait: how long --discover waits for answers, seconds. */
  wait: number;
  connectTimeout: number;
}

/** One line per host: name, the address:port dialled, and with `explain` what selected it. */
export function listHosts(
  opts: Omit<HostsOptions, 'wait' | 'connectTimeout'>,
  out: NodeJS.WritableStream = process.stdout,
  err: NodeJS.WritableStream = process.stderr,
): number {
  const { inventory, targets: selected } = resolveSelection(opts);
  // As a run would reach them.
  const { targets } = routeTargets(selected, opts);
  writeHostLines(targets, out, opts.explain === true);
  // Which reader took an Ansible inventory (distrun's own, or Ansible's ansible-inventory):
  // on stderr, so that stdout stays one line per host.
  if (opts.explain && inventory?.ansible) err.write(`distrun: inventory ${inventory.file}: read by ${inventory.ansible.reader}\n`);
  return 0;
}

/**
 * The selected hosts, each with whether an agent of its name answered through the
 * brokers; then on stderr how many did, and the names that answered but were not
 * selected. Exit 0 when every host the selection reaches through the brokers answered.
 */
export async function discoverHosts(
  opts: HostsOptions,
  out: NodeJS.WritableStream = process.stdout,
  err: NodeJS.WritableStream = process.stderr,
): Promise<number> {
  const { targets, urls } = routeTargets(resolveSelection(opts).targets, opts);
  if (urls === undefined) {
    throw new UsageError(
      '--discover asks the brokers, and none is named: give --broker HOST:PORT, set $DISTRUN_BROKER, or add broker: to the inventory',
    );
  }
  const [{ openClient, connectToBrokers }, { discoverAgents }] = await Promise.all([
    import('../execution/client.js'),
    import('../execution/broker-discovery.js'),
  ]);
  const { nc, name } = await connectToBrokers(urls, opts, openClient(opts).tls);
  let found: Awaited<ReturnType<typeof discoverAgents>>;
  try {
    found = await discoverAgents(
      nc,
      name,
      targets.map((t) => t.name),
      opts.wait * 1000,
    );
  } finally {
    await nc.close().catch(() => {});
  }
  writeHostLines(targets, out, opts.explain === true, (t) => (found.answered(t.name) ? 'connected' : 'no answer'));
  const brokered = targets.filter(throughBroker);
  const silent = brokered.filter((t) => !found.answered(t.name));
  const { others } = found;
  err.write(
    `distrun: ${brokered.length - silent.length} of ${count(brokered.length, 'host')} reached through the broker answered within ${(found.waitedMs / 1000).toFixed(1)} s` +
      `${silent.length > 0 ? `; no answer: ${foldHosts(silent.map((t) => t.name))}` : ''}` +
      `${others.length > 0 ? `; ${count(others.length, 'other name')} answered: ${foldHosts(others)}` : ''}` +
      ' (best effort: an answer is not a TLS session with the agent, as distrun ping is)\n',
  );
  return silent.length === 0 ? ExitCode.OK : ExitCode.CANNOT_RUN;
}
