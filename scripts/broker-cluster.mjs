#!/usr/bin/env node
// A local 3-node NATS broker cluster on loopback for trying distrun's broker mode:
//   node scripts/broker-cluster.mjs [PKI_DIR]     (default: $DISTRUN_PKI, ~/.config/distrun/pki)
// Issues broker certificates b1..b3 where the PKI has none, writes their nats-server
// configuration with `distrun broker config` (every agent and client the PKI has issued
// may log in), starts the three nodes, prints the --broker value, and stops them on
// Ctrl-C. Needs nats-server (Debian: apt-get install nats-server). The demo and the
// benchmark use startBrokerCluster from here too.
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const distrunBin = join(root, 'dist/src/bin/distrun.js');
export const NATS_SERVER = ['/usr/sbin/nats-server', '/usr/bin/nats-server'].find((p) => existsSync(p));

function distrun(args, env) {
  const r = spawnSync(process.execPath, [distrunBin, ...args], { encoding: 'utf8', env });
  if (r.status !== 0) throw new Error(`distrun ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

/** Free TCP ports on 127.0.0.1. */
async function freePorts(count) {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise((resolve) => {
          const server = createServer();
          server.listen(0, '127.0.0.1', () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((s) => s.address().port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

/**
 * Starts `size` nodes b1..bN on 127.0.0.1 (client ports `basePort`, `basePort + 1`, ...,
 * cluster ports from `basePort + 1000`; free ports when no basePort is given); resolves
 * once every node has its routes. `work` holds the configuration files. `monitor` adds
 * nats-server's HTTP monitoring on a free loopback port (node.monitor, for the benchmark's
 * message counts). Returns the nodes, the --broker value and stop().
 */
export async function startBrokerCluster({ pki, work, size = 3, basePort, monitor = false, env = process.env }) {
  if (!NATS_SERVER) throw new Error('nats-server is not installed (apt-get install nats-server)');
  const names = Array.from({ length: size }, (_, i) => `b${i + 1}`);
  for (const name of names) {
    if (!existsSync(join(pki, 'brokers', name, 'broker.crt'))) distrun(['certs', 'broker', name, '--ip', '127.0.0.1', '--dir', pki], env);
  }
  const out = join(work, 'brokers');
  const ports = basePort === undefined ? await freePorts(2 * size) : names.flatMap((_, i) => [basePort + i, basePort + 1000 + i]);
  const specs = names.map((name, i) => `${name}=127.0.0.1:${ports[2 * i]}:${ports[2 * i + 1]}`);
  distrun(['broker', 'config', '--dir', pki, '--out', out, ...specs], env);
  const monitorPorts = monitor ? await freePorts(size) : [];
  for (const [i, port] of monitorPorts.entries()) appendFileSync(join(out, `${names[i]}.conf`), `\nhttp: "127.0.0.1:${port}"\n`);
  const nodes = names.map((name, i) => {
    const child = spawn(NATS_SERVER, ['-c', join(out, `${name}.conf`)], { stdio: ['ignore', 'pipe', 'pipe'] });
    const node = { name, url: `127.0.0.1:${ports[2 * i]}`, monitor: monitor ? `http://127.0.0.1:${monitorPorts[i]}` : undefined, child, log: '' };
    child.stdout.on('data', (c) => (node.log += c));
    child.stderr.on('data', (c) => (node.log += c));
    return node;
  });
  const routed = (n) => n.log.includes('Server is ready') && (n.log.match(/Route connection created/g) ?? []).length >= size - 1;
  for (let waited = 0; !nodes.every(routed); waited += 50) {
    const dead = nodes.find((n) => n.child.exitCode !== null);
    if (dead || waited > 20_000) {
      for (const n of nodes) n.child.kill('SIGKILL');
      throw new Error(`the broker cluster did not form:\n${(dead ?? nodes[0]).log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const stop = () =>
    Promise.all(
      nodes.map(
        (n) =>
          new Promise((resolve) => {
            if (n.child.exitCode !== null || n.child.signalCode !== null) return resolve();
            n.child.once('exit', resolve);
            n.child.kill('SIGTERM');
          }),
      ),
    );
  return { nodes, urls: nodes.map((n) => n.url).join(','), stop };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const pki = resolve(process.argv[2] ?? process.env.DISTRUN_PKI ?? join(homedir(), '.config', 'distrun', 'pki'));
  const work = mkdtempSync(join(tmpdir(), 'distrun-brokers-'));
  try {
    const cluster = await startBrokerCluster({ pki, work, basePort: 14222 });
    process.stdout.write(
      `3 brokers on loopback: ${cluster.urls}\n` +
        `agents:  distrunner-agent ... --broker ${cluster.urls}\n` +
        `clients: distrun --broker ${cluster.urls} -g GROUP COMMAND\n` +
        'Ctrl-C stops them.\n',
    );
    await new Promise((resolve) => process.once('SIGINT', resolve));
    await cluster.stop();
  } catch (err) {
    process.stderr.write(`broker-cluster: ${err.message}\n`);
    process.exitCode = 1;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
