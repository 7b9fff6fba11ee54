// `distrun certs ...`: create the fleet CA and issue agent and client bundles.
import { InvalidArgumentError, type Command } from 'commander';
import { defaultPkiDir } from '../../pki/pki-paths.js';
import type { Bundle } from '../../pki/pki-store.js';
import { collect } from '../options.js';
import { table } from '../output/table.js';

function positiveDays(value: string): number {
  const days = Number(value);
  if (!/^\d+$/.test(value) || days < 1 || days > 3650) throw new InvalidArgumentError('must be a whole number from 1 to 3650');
  return days;
}

// node-forge is only needed here: load it on demand so that running commands stays fast.
const store = () => import('../../pki/pki-store.js');

function describeBundle(bundle: Bundle): string {
  return [
    ...bundle.files.map((f) => `  wrote ${f}`),
    `  serial ${bundle.serial}, valid until ${bundle.notAfter.toISOString().slice(0, 10)}`,
    `  names: ${bundle.altNames.join(', ')}`,
  ].join('\n');
}

export function registerCertsCommand(program: Command): void {
  const certs = program.command('certs').description('create the fleet CA and issue agent and client certificates');
  const pkiOption = ['--dir <dir>', 'PKI directory (default: $DISTRUN_PKI, ~/.config/distrun/pki)'] as const;

  certs
    .command('init')
    .description('create a private CA and the admin client certificate')
    .option(...pkiOption)
    .option('--force', 'replace an existing CA (every certificate it issued stops working)')
    .action(async (opts: { dir?: string; force?: boolean }) => {
      const dir = opts.dir ?? defaultPkiDir();
      const result = (await store()).initPki(dir, { force: opts.force });
      process.stdout.write(`created CA ${result.caCert} (keep ca.key secret: it can issue certificates)\n`);
      process.stdout.write(`created admin client identity:\n${describeBundle(result.client)}\n`);
    });

  // Agents and brokers are dialled: their certificates name the addresses they are reached at.
  const dialled = [
    {
      role: 'agent',
      description: "issue an agent's key and certificate, with a copy of the CA certificate",
      nameHelp: 'the agent host name (also a subject alternative name)',
      issue: async () => (await store()).issueAgentBundle,
      next: (name: string, bundle: Bundle) => `copy ${bundle.dir}/{agent.crt,agent.key,ca.crt} to /etc/distrunner/ on ${name} (agent.key mode 0600)`,
    },
    {
      role: 'broker',
      description: "issue a NATS broker's key and certificate (server and cluster route use), with a copy of the CA certificate",
      nameHelp: 'the broker host name (also a subject alternative name)',
      issue: async () => (await store()).issueBrokerBundle,
      next: (_name: string, bundle: Bundle) => `write its nats-server configuration with: distrun broker config --broker-dir ${bundle.dir} ...`,
    },
  ] as const;
  for (const { role, description, nameHelp, issue, next } of dialled) {
    certs
      .command(role)
      .description(description)
      .argument('<name>', nameHelp)
      .option('--ip <ip>', `an IP address the ${role} is reached at (repeatable)`, collect)
      .option('--dns <name>', `another DNS name the ${role} is reached at (repeatable)`, collect)
      .option('--out <dir>', `where to write the bundle (default: DIR/${role}s/NAME)`)
      .option('--days <n>', 'validity in days (default 825)', positiveDays)
      .option('--force', 'replace an existing bundle')
      .option(...pkiOption)
      .action(async (name: string, opts: { ip?: string[]; dns?: string[]; out?: string; days?: number; force?: boolean; dir?: string }) => {
        const dir = opts.dir ?? defaultPkiDir();
        const bundle = (await issue())(dir, name, { ips: opts.ip, dns: opts.dns, out: opts.out, days: opts.days, force: opts.force });
        process.stdout.write(`issued ${role} certificate for ${name}:\n${describeBundle(bundle)}\n`);
        process.stdout.write(`${next(name, bundle)}\n`);
      });
  }

  certs
    .command('client')
    .description('issue another client identity (for another operator or automation)')
    .argument('<name>', 'the client name (certificate subject)')
    .option('--out <dir>', 'where to write the bundle (default: DIR/clients/NAME)')
    .option('--days <n>', 'validity in days (default 825)', positiveDays)
    .option('--force', 'replace an existing bundle')
    .option(...pkiOption)
    .action(async (name: string, opts: { out?: string; days?: number; force?: boolean; dir?: string }) => {
      const dir = opts.dir ?? defaultPkiDir();
      const bundle = (await store()).issueClientBundle(dir, name, { out: opts.out, days: opts.days, force: opts.force });
      process.stdout.write(`issued client certificate for ${name}:\n${describeBundle(bundle)}\n`);
      process.stdout.write(`use it with: distrun --pki ${bundle.dir} ...\n`);
    });

  certs
    .command('revoke')
    .description('revoke certificates by name or serial and publish a new CRL (DIR/crl.pem)')
    .argument('<name-or-serial>', 'a certificate name (every valid certificate of that name) or a serial')
    .option(...pkiOption)
    .action(async (nameOrSerial: string, opts: { dir?: string }) => {
      const dir = opts.dir ?? defaultPkiDir();
      const { revoked, crl } = (await store()).revoke(dir, nameOrSerial);
      for (const r of revoked) process.stdout.write(`revoked ${r.role} ${r.name} serial ${r.serial}\n`);
      process.stdout.write(`wrote ${crl}: copy it to every agent (crl: in agent.yaml) and reload them (SIGHUP)\n`);
    });

  certs
    .command('crl')
    .description('publish the CRL (DIR/crl.pem) again, e.g. for a new agent')
    .option(...pkiOption)
    .action(async (opts: { dir?: string }) => {
      const crl = (await store()).publishCrl(opts.dir ?? defaultPkiDir());
      process.stdout.write(`wrote ${crl}\n`);
    });

  certs
    .command('list')
    .description('list issued certificates: serial, name, role, expiry, state')
    .option(...pkiOption)
    .action(async (opts: { dir?: string }) => {
      const records = (await store()).readIssued(opts.dir ?? defaultPkiDir()).filter((r) => r.role !== 'ca');
      const now = Date.now();
      const rows = records.map((r) => [
        r.serial,
        r.name,
        r.role,
        r.notAfter.slice(0, 10),
        r.revokedAt ? `revoked ${r.revokedAt.slice(0, 10)}` : Date.parse(r.notAfter) < now ? 'expired' : 'valid',
      ]);
      process.stdout.write(table([['SERIAL', 'NAME', 'ROLE', 'EXPIRES', 'STATE'], ...rows]));
    });

  certs
    .command('renew')
    .description('re-issue a certificate before it expires: same name, role and addresses, new key')
    .argument('<name>', 'the certificate name')
    .option('--days <n>', 'validity in days (default 825)', positiveDays)
    .option(...pkiOption)
    .action(async (name: string, opts: { days?: number; dir?: string }) => {
      const bundle = (await store()).renew(opts.dir ?? defaultPkiDir(), name, { days: opts.days });
      process.stdout.write(`re-issued ${name}:\n${describeBundle(bundle)}\n`);
      process.stdout.write('the previous certificate stays valid until it expires; revoke it by serial if its key is compromised\n');
    });
}
