// Which of a run's hosts go through the fleet's NATS brokers, and through which brokers.
// What the inventory says of a host wins (its own `connect`, its group's, `defaults`, an
// inventory `broker:` or an Ansible `distrun_connect`/`distrun_broker`; a rerun: the
// record). A host nothing is said of goes through the brokers when --broker or
// $DISTRUN_BROKER names them, else directly. Every brokered host of a run uses the same
// brokers: --broker, else $DISTRUN_BROKER, else the ones its inventory names; hosts
// that name different brokers, or a brokered host with none named, are refused before
// anything is dialled.
import { parseBrokerUrls } from '../../broker/broker-urls.js';
import { UsageError } from '../../errors.js';
import type { Target } from '../targeting/model.js';

export interface RoutedTargets {
  /** The hosts, each brokered one with its `reach` (through: broker, its brokers). */
  targets: Target[];
  /** The brokers of the run; undefined when every host is reached directly. */
  urls?: string[];
}

export function routeTargets(targets: readonly Target[], opts: { broker?: string }, env: NodeJS.ProcessEnv = process.env): RoutedTargets {
  const named =
    opts.broker !== undefined
      ? { urls: parseBrokerUrls(opts.broker, '--broker'), by: '--broker' }
      : env.DISTRUN_BROKER
        ? { urls: parseBrokerUrls(env.DISTRUN_BROKER, '$DISTRUN_BROKER'), by: '$DISTRUN_BROKER' }
        : undefined;
  const brokered = (t: Target): boolean => (t.reach ? t.reach.through === 'broker' : named !== undefined);
  const chosen = targets.filter(brokered);
  if (chosen.length === 0) return { targets: [...targets] };
  let urls = named?.urls;
  if (urls === undefined) {
    const first = chosen[0]!;
    const firstUrls = first.reach?.urls?.join(',');
    for (const t of chosen) {
      if (t.reach?.urls === undefined) {
        throw new UsageError(
          `${t.name} is reached through a broker (${t.reach?.by}), but no broker is named for it: add broker: to the inventory, or give --broker HOST:PORT`,
        );
      }
      if (t.reach.urls.join(',') !== firstUrls) {
        throw new UsageError(
          `${first.name} and ${t.name} name different brokers (${firstUrls}; ${t.reach.urls.join(',')}): one run goes through one broker cluster; select them apart, or give --broker`,
        );
      }
    }
    urls = first.reach!.urls!;
  }
  return {
    urls,
    targets: targets.map((t) => (brokered(t) ? { ...t, reach: { through: 'broker', by: t.reach?.by ?? named!.by, urls } } : t)),
  };
}
