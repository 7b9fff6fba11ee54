// `distrun broker config`: the nats-server configuration files of the fleet's broker
// cluster, from the PKI's record of issued certificates (broker/broker-config.ts).
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { brokerConfig, type BrokerNode, type FleetMember } from '../../broker/broker-config.js';
import { DEFAULT_BROKER_PORT } from '../../broker/broker-urls.js';
import { PkiError, UsageError } from '../../errors.js';
import { makePrivateDir, writeFileWithMode } from '../../private-files.js';
import { BundleFiles, defaultPkiDir, PkiFiles } from '../../pki/pki-paths.js';
import { isPlainName } from '../../pki/names.js';

const DEFAULT_CLUSTER_PORT = 6222;

const port = (text: string | undefined, fallback: number, spec: string): number => {
  if (text === undefined || text === '') return fallback;
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > 65535) throw new UsageError(`broker ${spec}: invalid port ${JSON.stringify(text)}`);
  return n;
};

/** NAME[=HOST[:CLIENTPORT[:CLUSTERPORT]]] (an IPv6 host in brackets). */
function parseNodeSpec(spec: string, pkiDir: string): BrokerNode {
  const match = /^([^=]+)(?:=(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]+))(?::(\d*))?(?::(\d*))?)?$/.exec(spec);
  const name = match?.[1];
  if (!match || !name || !isPlainName(name))
    throw new UsageError(`invalid broker ${JSON.stringify(spec)}: use NAME[=HOST[:CLIENTPORT[:CLUSTERPORT]]]`);
  const dir = resolve(pkiDir, BundleFiles.broker.dir, name);
  const files = { cert: join(dir, PkiFiles.BROKER_CERT), key: join(dir, PkiFiles.BROKER_KEY), ca: join(dir, PkiFiles.CA_CERT) };
  if (!existsSync(files.cert))
    throw new PkiError(`no broker certificate for ${name} (${files.cert}); issue one with: distrun certs broker ${name} --ip ...`);
  return {
    name,
    host: match[2] ?? match[3] ?? name,
    clientPort: port(match[4], DEFAULT_BROKER_PORT, spec),
    clusterPort: port(match[5], DEFAULT_CLUSTER_PORT, spec),
    files,
  };
}

export function registerBrokerCommand(program: Command): void {
  const broker = program.command('broker').description("the fleet's NATS broker cluster (agents behind NAT, fleets past one controller)");
  broker
    .command('config')
    .description('write the nats-server configuration of each broker node, from the certificates the PKI has issued')
    .argument(
      '<node...>',
      'each node of the cluster: NAME[=HOST[:CLIENTPORT[:CLUSTERPORT]]] (default ports 4222 and 6222), with a bundle from distrun certs broker NAME',
    )
    .option('--out <dir>', 'where to write NAME.conf for each node (default: DIR/brokers)')
    .option('--dir <dir>', 'PKI directory (default: $DISTRUN_PKI, ~/.config/distrun/pki)')
    .action(async (specs: string[], opts: { out?: string; dir?: string }) => {
      const pkiDir = opts.dir ?? defaultPkiDir();
      const nodes = specs.map((spec) => parseNodeSpec(spec, pkiDir));
      if (new Set(nodes.map((n) => n.name)).size !== nodes.length) throw new UsageError('each broker node must be named once');
      const { readIssued } = await import('../../pki/pki-store.js');
      // A revoked certificate gets no user. nats-server reads no CRL, so a revoked
      // certificate whose name was issued again still logs in as that name; what it could
      // run is refused by the agents, which do read the CRL.
      const valid = readIssued(pkiDir).filter((r) => !r.revokedAt && Date.parse(r.notAfter) > Date.now());
      const members = new Map<string, FleetMember>();
      for (const r of valid) {
        if (r.role !== 'agent' && r.role !== 'client') continue;
        const key = `${r.role}:${r.name}`;
        const names = [r.name, ...(r.dns ?? []), ...(r.ips ?? [])];
        const known = members.get(key);
        members.set(key, { role: r.role, name: r.name, names: [...new Set([...(known?.names ?? []), ...names])] });
      }
      const out = resolve(opts.out ?? join(pkiDir, BundleFiles.broker.dir));
      makePrivateDir(out);
      const secret = randomBytes(24).toString('base64url');
      const written = new Date().toISOString();
      const list = [...members.values()];
      for (const node of nodes) {
        const file = join(out, `${node.name}.conf`);
        writeFileWithMode(file, brokerConfig(node, nodes, list, secret, written), 0o600);
        process.stdout.write(`wrote ${file}\n`);
      }
      const agents = list.filter((m) => m.role === 'agent').length;
      process.stdout.write(`${agents} agents and ${list.length - agents} clients may log in; start each node with: nats-server -c FILE\n`);
    });
}
