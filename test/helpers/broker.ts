// A real nats-server cluster on loopback for the broker tests: broker certificates from
// `distrun certs broker`, configuration files from `distrun broker config` (exactly what
// an operator would run), one nats-server process per node, stopped by cleanupAll.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { addCleanup, distrun, SETPRIV, startAgent, tempDir, waitFor, type AgentOptions, type Pki, type RunningAgent } from './fleet.js';

const NATS_SERVER = '/usr/sbin/nats-server';

/** nats-server, killed if the test worker dies before cleanupAll (setpriv execs it in place: the pid is nats-server's). */
const spawnNatsServer = (args: string[]): ChildProcess =>
  spawn(SETPRIV, ['--pdeathsig', 'SIGKILL', '--', NATS_SERVER, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });

interface BrokerNodeProcess {
  name: string;
  /** host:port clients and agents dial. */
  url: string;
  configFile: string;
  process: ChildProcess;
  log(): string;
  /** SIGKILL (a node that dies), or SIGTERM; resolves once it has exited. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Starts the node again with the same configuration. */
  restart(): Promise<void>;
}

export interface BrokerCluster {
  nodes: BrokerNodeProcess[];
  /** Every node's address, comma separated (for --broker and agent configs). */
  urls: string;
  /** Writes the configuration again (after issuing certificates) and reloads every node. */
  reconfigure(): Promise<void>;
}

/** Free TCP ports on 127.0.0.1 (bound and released: nothing else on this machine takes them meanwhile in practice). */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve) => {
          const server = createServer();
          server.listen(0, '127.0.0.1', () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

/** A lone nats-server with these arguments, once it says it is ready; stopped by cleanupAll. */
export async function startNatsServer(args: string[]): Promise<ChildProcess> {
  const child = spawnNatsServer(args);
  let output = '';
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  addCleanup(() => {
    child.kill('SIGKILL');
  });
  if (!(await waitFor(() => output.includes('Server is ready') || child.exitCode !== null))) throw new Error(`nats-server did not start:\n${output}`);
  if (child.exitCode !== null) throw new Error(`nats-server exited:\n${output}`);
  return child;
}

function startNode(name: string, url: string, configFile: string): BrokerNodeProcess {
  let output = '';
  let child: ChildProcess;
  let exited: Promise<void>;
  const launch = (): void => {
    child = spawnNatsServer(['-c', configFile]);
    child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
    exited = new Promise((resolve) => child.once('exit', () => resolve()));
  };
  launch();
  const node: BrokerNodeProcess = {
    name,
    url,
    configFile,
    get process() {
      return child;
    },
    log: () => output,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
    restart: async () => {
      await node.stop();
      const before = output.length;
      launch();
      if (!(await waitFor(() => output.slice(before).includes('Server is ready')))) throw new Error(`broker ${name} did not start again:\n${output}`);
    },
  };
  addCleanup(() => node.stop('SIGKILL'));
  return node;
}

/** `size` nats-server nodes b1..bN on 127.0.0.1, routed to each other; resolves once every route is up. */
export async function startBrokerCluster(pki: Pki, size = 3): Promise<BrokerCluster> {
  const ports = await freePorts(size * 2);
  const names = Array.from({ length: size }, (_, i) => `b${i + 1}`);
  for (const name of names) {
    const issued = await distrun(['certs', 'broker', name, '--ip', '127.0.0.1', '--dir', pki.dir]);
    if (issued.code !== 0) throw new Error(`certs broker failed: ${issued.stderr}`);
  }
  const out = join(tempDir('distrun-broker-'), 'conf');
  const specs = names.map((name, i) => `${name}=127.0.0.1:${ports[2 * i]}:${ports[2 * i + 1]}`);
  const configure = async (): Promise<void> => {
    const written = await distrun(['broker', 'config', '--dir', pki.dir, '--out', out, ...specs]);
    if (written.code !== 0) throw new Error(`broker config failed: ${written.stderr}`);
  };
  await configure();
  const nodes = names.map((name, i) => startNode(name, `127.0.0.1:${ports[2 * i]}`, join(out, `${name}.conf`)));
  const ready = await waitFor(() => nodes.every((n) => n.log().includes('Server is ready') && countRoutes(n.log()) >= size - 1), 20_000);
  if (!ready) throw new Error(`the broker cluster did not form:\n${nodes.map((n) => `${n.name}:\n${n.log()}`).join('\n')}`);
  return {
    nodes,
    urls: nodes.map((n) => n.url).join(','),
    reconfigure: async () => {
      // Route secrets change with every writing: the whole cluster restarts on the new files.
      await configure();
      for (const node of nodes) await node.restart();
    },
  };
}

function countRoutes(log: string): number {
  return (log.match(/Route connection created/g) ?? []).length;
}

/**
 * Waits until `hosts` answer a ping through `broker`: an agent's subscription reaches the
 * other nodes of a cluster a moment after its own node has it, and until then a client
 * on another node rightly hears "no responders".
 */
export async function waitUntilReachable(broker: string, pkiDir: string, hostArgs: string[]): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const r = await distrun(['ping', '--broker', broker, '--pki', pkiDir, '-q', ...hostArgs]);
    if (r.code === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${hostArgs.join(' ')} never answered through ${broker}`);
}

/** A 3-node cluster with agents on its nodes, each listening directly too, and an inventory of them. */
export interface BrokerFleet {
  cluster: BrokerCluster;
  /** In the order asked for; agent i is host `agent<i+1>` of the inventory. */
  agents: RunningAgent[];
  /** The agents by address and port, `ghost` (nothing listens at its port), and the groups asked for. */
  inventory: string;
  /** distrun's arguments through the third node, which no agent uses: every message crosses a cluster route. */
  viaBroker(...args: string[]): string[];
  /** The same run, dialling the agents. */
  direct(...args: string[]): string[];
}

/** Agents `agent1`... on the cluster nodes `nodes[i]` (0-based), once the third node reaches them all. */
export async function startBrokerFleet(
  pki: Pki,
  nodes: number[],
  groups: Record<string, string[]>,
  optionsOf: (i: number) => AgentOptions = () => ({}),
): Promise<BrokerFleet> {
  const cluster = await startBrokerCluster(pki, 3);
  const names = nodes.map((_, i) => `agent${i + 1}`);
  const agents = await Promise.all(
    nodes.map((node, i) => {
      const options = optionsOf(i);
      return startAgent(pki, names[i], { ...options, config: { ...options.config, broker: { urls: [cluster.nodes[node]!.url] } } });
    }),
  );
  const via = cluster.nodes[2]!.url;
  await waitUntilReachable(via, pki.dir, ['-H', names.join(',')]);
  const inventory = join(tempDir(), 'hosts.yaml');
  const hosts = Object.fromEntries(agents.map((a, i) => [names[i], { address: '127.0.0.1', port: a.port }]));
  writeFileSync(inventory, JSON.stringify({ hosts: { ...hosts, ghost: { address: '127.0.0.1', port: 1 } }, groups }));
  const direct = (...args: string[]) => ['--pki', pki.dir, '-i', inventory, ...args];
  return { cluster, agents, inventory, viaBroker: (...args) => ['--broker', via, ...direct(...args)], direct };
}
