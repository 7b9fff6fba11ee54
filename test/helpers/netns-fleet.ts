// Several real hosts on one machine: each host is a network namespace with its own
// address, hostname (UTS namespace) and agent; distrun runs from a client namespace.
// All of them hang off a bridge in a namespace of its own:
//
//   drt-PID-T-c (client 10.231.0.1) ─┐
//   drt-PID-T-h01 (10.231.0.11)  ────┼── br0 in drt-PID-T-br
//   drt-PID-T-h02 (10.231.0.12)  ────┘   ...
//
// The root namespace gets no address and no route, so no test traffic leaves the
// namespaces. Names carry the owner's pid: namespaces of a run that died (its pid gone)
// are removed by the next one. Needs root and iproute2 (ip, tc) and util-linux (unshare).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { threadId } from 'node:worker_threads';
import { distrun, startAgent, tempDir, type Pki, type Result, type RunningAgent, type RunOptions } from './fleet.js';

const PREFIX = 'drt-';
const SUBNET = '10.231.0';
const CLIENT_ADDRESS = `${SUBNET}.1`;

/** Why the namespace tests cannot run here, or undefined when they can. */
export function netnsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'not root';
  for (const tool of ['ip', 'tc', 'unshare']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} is missing (apt-get install iproute2 util-linux)`;
  }
  const probe = `${PREFIX}${process.pid}-probe`;
  const added = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' });
  spawnSync('ip', ['netns', 'del', probe]);
  return added.status === 0 ? undefined : `cannot create network namespaces: ${added.stderr.trim()}`;
}

/** Runs an iproute2 tool; a failure throws with its message. */
function iproute(tool: 'ip' | 'tc', args: string[]): void {
  const result = spawnSync(tool, args, { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`${tool} ${args.join(' ')}: ${result.stderr.trim()}`);
}
const ip = (args: string[]): void => iproute('ip', args);
const tc = (args: string[]): void => iproute('tc', args);

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Kills whatever still runs in a namespace, then removes it. */
function deleteNamespace(name: string): void {
  const pids = spawnSync('ip', ['netns', 'pids', name], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
  for (const pid of pids) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // gone already
    }
  }
  spawnSync('ip', ['netns', 'del', name]);
}

function namespacesOf(test: (owner: number) => boolean): string[] {
  const list = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
  return list
    .split('\n')
    .map((line) => line.split(' ')[0]!)
    .filter((name) => {
      const owner = new RegExp(`^${PREFIX}(\\d+)-`).exec(name);
      return owner !== null && test(Number(owner[1]));
    });
}

/** Removes the namespaces of earlier runs that died before cleaning up. */
function removeStaleNamespaces(): string[] {
  const stale = namespacesOf((owner) => owner !== process.pid && !isAlive(owner));
  for (const name of stale) deleteNamespace(name);
  return stale;
}

// Inside a host's namespaces, before its agent: its hostname, and its own /srv and /etc/hostname.
const MACHINE = 'hostname "$0" && mount --bind "$1/srv" /srv && mount --bind "$1/hostname" /etc/hostname && shift && exec "$@"';

export interface NetnsHost {
  /** Inventory name and hostname inside the host (`uname -n`). */
  name: string;
  address: string;
  netns: string;
  agent: RunningAgent | undefined;
  /**
   * The host's own files, as the machine sees them: its agent has a mount namespace in
   * which `ROOT/srv` is /srv and `ROOT/hostname` (the host's name) is /etc/hostname, so
   * that copies to /srv and fetches of /etc/hostname are per host, as on real machines.
   */
  root: string;
}

interface NetnsFleetOptions {
  hosts: number;
  pki: Pki;
  /** Settings for every agent's configuration, on top of the defaults of startAgent. */
  agentConfig?: Record<string, unknown>;
}

export class NetnsFleet {
  readonly hosts: NetnsHost[] = [];
  readonly clientNetns: string;
  readonly inventory: string;
  private readonly bridgeNetns: string;
  private readonly members: string[] = [];
  private destroyed = false;
  private readonly onExit = (): void => this.destroy();

  private constructor(private readonly options: NetnsFleetOptions) {
    // ava runs test files in worker threads of one process: the thread keeps fleets apart.
    const base = `${PREFIX}${process.pid}-${threadId}-`;
    this.bridgeNetns = `${base}br`;
    this.clientNetns = `${base}c`;
    const dir = tempDir('distrun-netns-');
    this.inventory = join(dir, 'hosts.yaml');
    for (let i = 1; i <= options.hosts; i += 1) {
      const name = `h${String(i).padStart(2, '0')}`;
      const root = join(dir, name);
      mkdirSync(join(root, 'srv'), { recursive: true });
      writeFileSync(join(root, 'hostname'), `${name}\n`);
      this.hosts.push({ name, address: `${SUBNET}.${10 + i}`, netns: `${base}${name}`, agent: undefined, root });
    }
  }

  /** Builds the namespaces and links, issues the agents' certificates and starts the agents. */
  static async create(options: NetnsFleetOptions): Promise<NetnsFleet> {
    removeStaleNamespaces();
    const fleet = new NetnsFleet(options);
    // Even an interrupted run (Ctrl-C, a failed assertion) leaves no namespace behind.
    process.once('exit', fleet.onExit);
    try {
      fleet.build();
      await Promise.all(fleet.hosts.map((host) => fleet.issueCertificate(host)));
      await Promise.all(fleet.hosts.map((host) => fleet.startAgent(host)));
    } catch (err) {
      fleet.destroy();
      throw err;
    }
    return fleet;
  }

  private build(): void {
    ip(['netns', 'add', this.bridgeNetns]);
    this.members.push(this.bridgeNetns);
    ip(['-n', this.bridgeNetns, 'link', 'add', 'br0', 'type', 'bridge']);
    ip(['-n', this.bridgeNetns, 'link', 'set', 'br0', 'up']);
    this.join(this.clientNetns, CLIENT_ADDRESS, 'c');
    for (const host of this.hosts) this.join(host.netns, host.address, host.name);
    const lines = [
      'hosts:',
      ...this.hosts.map((h) => `  ${h.name}: {address: ${h.address}}`),
      'groups:',
      `  fleet: [${this.hosts.map((h) => h.name).join(', ')}]`,
      '',
    ];
    writeFileSync(this.inventory, lines.join('\n'));
  }

  // A namespace with `eth0` (ADDRESS/24) whose other end is a port of the bridge.
  private join(netns: string, address: string, port: string): void {
    ip(['netns', 'add', netns]);
    this.members.push(netns);
    ip(['link', 'add', 'eth0', 'netns', netns, 'type', 'veth', 'peer', 'name', port, 'netns', this.bridgeNetns]);
    ip(['-n', this.bridgeNetns, 'link', 'set', port, 'master', 'br0', 'up']);
    ip(['-n', netns, 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
    ip(['-n', netns, 'link', 'set', 'lo', 'up']);
    ip(['-n', netns, 'link', 'set', 'eth0', 'up']);
  }

  private async issueCertificate(host: NetnsHost): Promise<void> {
    const issued = await distrun(['certs', 'agent', host.name, '--ip', host.address, '--dir', this.options.pki.dir]);
    if (issued.code !== 0) throw new Error(`certs agent ${host.name} failed: ${issued.stderr}`);
  }

  /** Starts (or restarts) the host's agent on ADDRESS:6789, inside its namespace and with its hostname. */
  async startAgent(host: NetnsHost, config: Record<string, unknown> = {}): Promise<RunningAgent> {
    host.agent = await startAgent(this.options.pki, host.name, {
      config: { host: host.address, port: 6789, logLevel: 'info', ...this.options.agentConfig, ...config },
      // ip and unshare exec in place: the agent keeps the pid that was spawned.
      prefix: [
        'ip',
        'netns',
        'exec',
        host.netns,
        'unshare',
        '--uts',
        '--mount',
        '--propagation',
        'private',
        '--',
        '/bin/sh',
        '-c',
        MACHINE,
        host.name,
        host.root,
      ],
    });
    return host.agent;
  }

  host(name: string): NetnsHost {
    const host = this.hosts.find((h) => h.name === name);
    if (!host) throw new Error(`no host ${name}`);
    return host;
  }

  /** Runs distrun in the client namespace with this fleet's inventory and PKI. */
  distrun(args: string[], options: RunOptions = {}): Promise<Result> {
    return distrun(['-i', this.inventory, '--pki', this.options.pki.dir, ...args], { ...options, netns: this.clientNetns });
  }

  /** The distrun arguments run() would add, for spawnDistrun. */
  get distrunArgs(): string[] {
    return ['-i', this.inventory, '--pki', this.options.pki.dir];
  }

  linkDown(host: NetnsHost): void {
    ip(['-n', host.netns, 'link', 'set', 'eth0', 'down']);
  }

  linkUp(host: NetnsHost): void {
    ip(['-n', host.netns, 'link', 'set', 'eth0', 'up']);
  }

  /** Limits what the host sends (its agent's output) to `rate`, e.g. '200mbit' (tbf; netem is not available). */
  limitRate(host: NetnsHost, rate: string): void {
    tc(['-n', host.netns, 'qdisc', 'replace', 'dev', 'eth0', 'root', 'tbf', 'rate', rate, 'burst', '256kb', 'latency', '100ms']);
  }

  unlimitRate(host: NetnsHost): void {
    tc(['-n', host.netns, 'qdisc', 'del', 'dev', 'eth0', 'root']);
  }

  /**
   * Limits what the client sends to this host (a copy's data) to `rate`: an htb qdisc on
   * the client's eth0 whose class 1:10, for the host's address only (a u32 filter), has
   * that rate; everything else goes through class 1:20 unlimited. (prio and tbf as a
   * class are not built into these kernels; htb and u32 are.)
   */
  limitRateTo(host: NetnsHost, rate: string): void {
    const dev = ['-n', this.clientNetns];
    tc([...dev, 'qdisc', 'replace', 'dev', 'eth0', 'root', 'handle', '1:', 'htb', 'default', '20']);
    tc([...dev, 'class', 'replace', 'dev', 'eth0', 'parent', '1:', 'classid', '1:10', 'htb', 'rate', rate]);
    tc([...dev, 'class', 'replace', 'dev', 'eth0', 'parent', '1:', 'classid', '1:20', 'htb', 'rate', '10gbit']);
    const toHost = ['filter', 'replace', 'dev', 'eth0', 'parent', '1:', 'protocol', 'ip', 'prio'];
    const match = ['u32', 'match', 'ip', 'dst', `${host.address}/32`];
    // Small packets (IP length under 256: acknowledgements, keepalives) pass unlimited, so the
    // host's own data and keepalives are acknowledged at once and only the copy's data
    // waits in the queue; the rest of what goes to the host is limited.
    tc([...dev, ...toHost, '1', ...match, 'match', 'u16', '0x0000', '0xff00', 'at', '2', 'flowid', '1:20']);
    tc([...dev, ...toHost, '2', ...match, 'flowid', '1:10']);
  }

  unlimitRateTo(): void {
    tc(['-n', this.clientNetns, 'qdisc', 'del', 'dev', 'eth0', 'root']);
  }

  /** Stops every agent and removes every namespace (with their links); safe to call twice. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    process.off('exit', this.onExit);
    for (const host of this.hosts) host.agent?.process.kill('SIGKILL');
    // A namespace with no process left goes away with its veth ends and the bridge.
    for (const name of this.members.reverse()) deleteNamespace(name);
  }

  /** Namespaces of this process that still exist (for the tests' own check). */
  static leftovers(): string[] {
    return namespacesOf((owner) => owner === process.pid).filter((name) => existsSync(`/run/netns/${name}`));
  }
}
