// Options more than one command takes, and parsers for option values: a bad value is an option error (commander reports it with
// the option's name) before anything is loaded or dialled.
import { InvalidArgumentError, type Command } from 'commander';

/** A repeatable option's values, in order. */
export const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

export function positiveInt(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new InvalidArgumentError('must be a whole number of at least 1');
  return Number(value);
}

export function seconds(value: string): number {
  const n = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || n <= 0) throw new InvalidArgumentError('must be a number of seconds above 0');
  return n;
}

/** A size in bytes: a whole number, or with a binary suffix K, M, G or T (`512K`, `1G`). */
export function byteSize(value: string): number {
  const m = /^(\d+)([KMGT]?)$/i.exec(value);
  const n = m ? Number(m[1]) * 1024 ** ' KMGT'.indexOf((m[2] || ' ').toUpperCase()) : Number.NaN;
  if (!(Number.isSafeInteger(n) && n > 0)) throw new InvalidArgumentError('must be a size in bytes above 0 (a number, or with K, M, G or T)');
  return n;
}

// A host in flight costs the client about a millisecond of CPU and one socket; most of its
// time is round trips. 256 keeps a remote fleet's round trips overlapping where clush's 64
// would queue them, and is lowered to fit `ulimit -n` (docs/benchmarks.md).
export const DEFAULT_FANOUT = 256;
export const DEFAULT_CONNECT_TIMEOUT_S = 10;
/** `distrun hosts --discover`: answers come in milliseconds; this leaves room for a loaded broker. */
export const DISCOVERY_WAIT_S = 2;

export function addSelectionOptions(command: Command): Command {
  return command
    .option(
      '-i, --inventory <file>',
      'inventory file or directory, - for stdin (repeatable: Ansible inventories are merged; default: $DISTRUN_INVENTORY, ./hosts.yaml, ~/.config/distrun/hosts.yaml)',
      collect,
    )
    .option('--ansible-inventory', "read the inventory through Ansible's ansible-inventory --list (runs inventory scripts and plugins)")
    .option(
      '-g, --group <expr>',
      'select hosts by group or target expression: web, web:db, web:&prod:!web03, web[01-05], db*, all (repeatable)',
      collect,
    )
    .option('-H, --hosts <list>', 'select these hosts: host, host:port or a range, comma separated (repeatable)', collect)
    .option('-x, --exclude <list>', 'leave out these hosts, comma separated (repeatable)', collect);
}

export function addConnectionOptions(command: Command): Command {
  return command
    .option('-f, --fanout <n>', 'hosts in flight at once', positiveInt, DEFAULT_FANOUT)
    .option(
      '--connect-timeout <sec>',
      'give up on a host that has not answered within SEC (connect, TLS, first reply)',
      seconds,
      DEFAULT_CONNECT_TIMEOUT_S,
    )
    .option(
      '--broker <urls>',
      "the fleet's NATS brokers, host:port, comma separated (default: $DISTRUN_BROKER, then the inventory's broker:): every host goes through them unless the inventory says connect: direct",
    )
    .option('--pki <dir>', 'client certificate directory (default: $DISTRUN_PKI, ~/.config/distrun/pki)')
    .option('--token-file <file>', 'authentication token for agents that require one (default: $DISTRUN_TOKEN_FILE)');
}

/** The options of a file transfer (`copy`, `fetch`): -n, -q and its schedule. */
export function addTransferOptions(command: Command, verb: 'copy' | 'fetch', dryRun: string): Command {
  return command
    .option('-n, --dry-run', dryRun)
    .option('-q, --quiet', 'only failures and the summary')
    .option('--timeout <sec>', `stop the ${verb} on a host after SEC (its incomplete file is removed)`, seconds)
    .option('--batch <n|n%>', `${verb} in batches of N hosts (or N% of them)`)
    .option('--batch-wait <sec>', 'pause between batches', seconds)
    .option('--max-fail <n|n%>', 'start no new host once N hosts (or N%) were not ok');
}
