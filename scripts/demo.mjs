#!/usr/bin/env node
// `npm run demo`: a throwaway PKI, three agents on loopback, an inventory with a group,
// a few commands through distrun, and (with nats-server installed) an agent reached only
// through a 3-node broker cluster. Leaves nothing running and nothing behind.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NATS_SERVER, startBrokerCluster } from './broker-cluster.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const distrunBin = join(root, 'dist/src/bin/distrun.js');
const agentBin = join(root, 'dist/src/bin/distrunner-agent.js');
const work = mkdtempSync(join(tmpdir(), 'distrun-demo-'));
const pki = join(work, 'pki');
const agents = [];
let brokers;

const bold = process.stdout.isTTY && !process.env.NO_COLOR ? (text) => `\x1b[1m${text}\x1b[0m` : (text) => text;

function step(text) {
  process.stdout.write(`\n${bold(`== ${text}`)}\n`);
}

function distrun(args, { show = true, quiet = false } = {}) {
  if (show) process.stdout.write(`$ distrun ${args.map(quote).join(' ')}\n`);
  const result = spawnSync(process.execPath, [distrunBin, ...args], {
    stdio: show ? 'inherit' : ['ignore', 'ignore', quiet ? 'ignore' : 'inherit'],
    // Run records go into the demo's own directory, removed at the end.
    env: { ...process.env, XDG_CACHE_HOME: join(work, 'cache') },
  });
  if (show) process.stdout.write(`(exit code ${result.status})\n`);
  return result.status;
}

function quote(arg) {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

function startAgent(name, extra = []) {
  const bundle = join(pki, 'agents', name);
  const child = spawn(
    process.execPath,
    [
      agentBin,
      '--host',
      '127.0.0.1',
      '--port',
      '0',
      '--log-level',
      'info',
      '--ca',
      join(bundle, 'ca.crt'),
      '--cert',
      join(bundle, 'agent.crt'),
      '--key',
      join(bundle, 'agent.key'),
      ...extra,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  agents.push(child);
  return new Promise((resolve, reject) => {
    let buffered = '';
    child.stdout.on('data', (chunk) => {
      buffered += chunk;
      for (const line of buffered.split('\n').slice(0, -1)) {
        const entry = JSON.parse(line);
        if (entry.msg === 'listening' && extra.length === 0) resolve(entry.port);
        if (entry.msg === 'connected to the broker') resolve(0);
      }
      buffered = buffered.slice(buffered.lastIndexOf('\n') + 1);
    });
    child.once('exit', (code) => reject(new Error(`agent ${name} exited with code ${code}`)));
  });
}

async function stopAgents() {
  await Promise.all(
    agents.map(
      (child) =>
        new Promise((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('exit', resolve);
          child.kill('SIGTERM');
        }),
    ),
  );
}

async function main() {
  step('1. A private CA, an admin client certificate, and three agent bundles');
  if (distrun(['certs', 'init', '--dir', pki]) !== 0) throw new Error('certs init failed');
  for (const name of ['web1', 'web2', 'web3']) {
    if (distrun(['certs', 'agent', name, '--ip', '127.0.0.1', '--dir', pki], { show: false }) !== 0) {
      throw new Error(`certs agent ${name} failed`);
    }
  }
  process.stdout.write('issued agent bundles for web1, web2, web3 (SAN IP 127.0.0.1)\n');

  step('2. Three agents on 127.0.0.1 (mutual TLS 1.3)');
  const ports = await Promise.all(['web1', 'web2', 'web3'].map((name) => startAgent(name)));
  ports.forEach((port, i) => process.stdout.write(`web${i + 1} listening on 127.0.0.1:${port}\n`));

  step('3. An inventory with a group');
  const inventory = join(work, 'hosts.yaml');
  const text = [
    'hosts:',
    ...ports.map((port, i) => `  web${i + 1}: { address: 127.0.0.1, port: ${port} }`),
    'groups:',
    '  webservers: [web1, web2, web3]',
    '',
  ].join('\n');
  writeFileSync(inventory, text);
  process.stdout.write(text);

  const base = ['-i', inventory, '--pki', pki];
  step('4. Run commands on the group');
  distrun([...base, '-g', 'webservers', 'uname', '-sr']);
  distrun([...base, '-g', 'webservers', '--', 'printf', '[%s]\\n', 'two words', '', 'ünïcødé']);
  distrun([...base, '-g', 'webservers', '--shell', 'echo "pid $$ on $(hostname)"; echo "to stderr" >&2; exit 3']);
  distrun([...base, '-g', 'webservers', '-x', 'web2', '--json', 'echo', 'hello']);

  step('5. Copy a file to a host, atomically; the same copy again changes nothing');
  const motd = join(work, 'motd');
  writeFileSync(motd, 'Welcome to the fleet\n');
  const dest = join(work, 'on-web1');
  mkdirSync(dest);
  distrun([...base, '-H', 'web1', 'copy', motd, dest]);
  distrun([...base, '-H', 'web1', 'copy', motd, dest]);

  step('6. Through a 3-node NATS broker cluster: an agent with no open port');
  if (!NATS_SERVER) {
    process.stdout.write('skipped: nats-server is not installed (apt-get install nats-server)\n');
    return;
  }
  if (distrun(['certs', 'agent', 'nat1', '--dir', pki], { show: false }) !== 0) throw new Error('certs agent nat1 failed');
  const cluster = await startBrokerCluster({ pki, work, env: { ...process.env, XDG_CACHE_HOME: join(work, 'cache') } });
  brokers = cluster;
  process.stdout.write(`brokers on ${cluster.urls} (configuration from: distrun broker config b1=... b2=... b3=...)\n`);
  await startAgent('nat1', ['--broker', cluster.nodes[0].url, '--no-listen']);
  process.stdout.write(`nat1 connected to ${cluster.nodes[0].url}, listening nowhere\n`);
  // The other nodes learn of nat1's subscription a moment later.
  for (
    let i = 0;
    i < 100 && distrun(['ping', '--broker', cluster.nodes[2].url, '--pki', pki, '-q', '-H', 'nat1'], { show: false, quiet: true }) !== 0;
    i++
  ) {
    await new Promise((r) => setTimeout(r, 100));
  }
  distrun(['--broker', cluster.nodes[2].url, '--pki', pki, '-H', 'nat1,nat2', 'uname', '-n']);
  // Who is connected (best effort): nat1 answers, nat2 does not, within the wait.
  distrun(['hosts', '--discover', '--wait', '1', '--broker', cluster.nodes[2].url, '--pki', pki, '-H', 'nat1,nat2']);
}

let failed = false;
try {
  await main();
} catch (err) {
  failed = true;
  process.stderr.write(`demo failed: ${err.message}\n`);
} finally {
  step('7. Stop the agents (and brokers) and remove the temporary files');
  await stopAgents();
  await brokers?.stop();
  rmSync(work, { recursive: true, force: true });
  process.stdout.write(`removed ${work}\n`);
}
process.exit(failed ? 1 : 0);
