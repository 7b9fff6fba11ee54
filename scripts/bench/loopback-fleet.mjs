// A fleet of agents on loopback addresses for the benchmark: host i is 127.0.X.Y (250
// per /24 from 127.0.2.1, as in the peers' harness), each with its own address and an
// agent certificate naming it. Up to `maxAgents` agent processes: beyond that an agent
// listens on several host addresses (like one sshd for all hosts), so 1,000 hosts do
// not need 1,000 Node processes. Certificates come from the project's own PKI code.
// For the copy section an agent can run in a mount namespace of its own where one
// directory of the host is bound over the shared destination path (`bind`): every
// host is this machine, and each must still write to a place of its own.
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { initPki, issueAgentBundle } from '../../dist/src/pki/pki-store.js';
import { childPids, processCpuSeconds, rssBytes, sleep } from './tools.mjs';

export const AGENT_PORT = 6789;

export function hostName(i) {
  return `h${String(i).padStart(4, '0')}`;
}

/** Host i as reached through the broker: its own name space, up to 99,999 hosts. */
export function brokerHostName(i) {
  return `b${String(i).padStart(5, '0')}`;
}

// Hosts 1..n as range patterns: names have 4 digits up to 9999 and 5 from 10000, and a
// range may not mix widths (ClusterShell's rule, which ours follows).
function directHostPatterns(n) {
  if (n === 1) return [`'${hostName(1)}'`];
  const patterns = [`'h[0001-${hostName(Math.min(n, 9999)).slice(1)}]'`];
  if (n >= 10000) patterns.push(`'h[10000-${n}]'`);
  return patterns;
}

export function hostAddress(i) {
  const n = i - 1;
  return `127.0.${2 + Math.floor(n / 250)}.${1 + (n % 250)}`;
}

/** Runs `argv` with the soft open-files limit raised to the hard one (1,000 sessions need it). */
export function withOpenFilesRaised(argv) {
  return ['bash', '-c', 'ulimit -n "$(ulimit -Hn)" && exec "$@"', 'bash', ...argv];
}

function commandName(pid) {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/**
 * The environment and node flags an installed agent runs with: those on its
 * `#!/usr/bin/env -S [NAME=VALUE...] node [FLAGS...]` line.
 */
function shebangLaunch(file) {
  const [first] = readFileSync(file, 'utf8').split('\n', 1);
  const match = /^#!\/usr\/bin\/env -S (.*)$/.exec(first);
  const words = match ? match[1].trim().split(/\s+/) : ['node'];
  const node = words.indexOf('node');
  const env = Object.fromEntries(words.slice(0, node).map((w) => [w.slice(0, w.indexOf('=')), w.slice(w.indexOf('=') + 1)]));
  return { env, nodeArgs: words.slice(node + 1) };
}

export class LoopbackFleet {
  constructor(root, work) {
    this.root = root;
    this.work = work;
    this.pki = join(work, 'pki');
    this.agents = [];
  }

  /**
   * Creates the PKI and `hosts` hosts served by at most `maxAgents` agents (+ extra agents by name).
   * `bindFor(i)`, when given, returns `{ source, target }` for the agent whose first host is
   * host i (or undefined): that agent sees `source` at `target`, in its own mount namespace.
   * `broker`, when given, also makes the fleet's agents answer `broker.hosts` names through a
   * broker (host i's name to the agent of host address i, round the agents): each agent's
   * certificate names them, and `broker.start(pki)` (called once the certificates exist, as
   * the broker's configuration is made from them) resolves with the --broker URLs.
   */
  async start({ hosts, maxAgents, agentNodeArgs = [], extraAgents = [], bindFor = () => undefined, broker }) {
    initPki(this.pki);
    const agentCount = Math.min(hosts, maxAgents);
    const addressesOf = Array.from({ length: agentCount }, () => []);
    for (let i = 1; i <= hosts; i += 1) addressesOf[(i - 1) % agentCount].push(hostAddress(i));
    const brokerNamesOf = Array.from({ length: agentCount }, () => []);
    for (let i = 1; i <= (broker?.hosts ?? 0); i += 1) brokerNamesOf[(i - 1) % agentCount].push(brokerHostName(i));
    const specs = addressesOf.map((addresses, k) => ({
      name: `agent${k + 1}`,
      addresses,
      brokerNames: brokerNamesOf[k],
      config: {},
      bind: bindFor(k + 1),
    }));
    specs.push(...extraAgents);
    mkdirSync(join(this.work, 'agents'), { recursive: true });
    for (const spec of specs) issueAgentBundle(this.pki, spec.name, { ips: spec.addresses, dns: spec.brokerNames ?? [] });
    if (broker) {
      const urls = await broker.start(this.pki);
      for (const spec of specs) if (spec.brokerNames?.length > 0) spec.config = { ...spec.config, broker: { urls, names: spec.brokerNames } };
      this.brokerHosts = broker.hosts;
    }
    this.agents = specs.map((spec) => this.spawnAgent(spec, agentNodeArgs));
    await Promise.all(this.agents.map((agent) => agent.ready));
    this.hosts = hosts;
    this.maxAgents = maxAgents;
    return this;
  }

  spawnAgent({ name, addresses, config, nodeArgs: ownNodeArgs, bind }, nodeArgs) {
    const bundle = join(this.pki, 'agents', name);
    const configFile = join(this.work, 'agents', `${name}.yaml`);
    // As a fleet host runs it: default log level (info), audit records in the log.
    const settings = {
      host: addresses.join(','),
      port: AGENT_PORT,
      ca: join(bundle, 'ca.crt'),
      cert: join(bundle, 'agent.crt'),
      key: join(bundle, 'agent.key'),
      maxSessions: 100000,
      maxSessionsPerClient: 100000,
      ...config,
    };
    writeFileSync(configFile, JSON.stringify(settings, null, 2));
    const logFile = join(this.work, 'agents', `${name}.log`);
    const log = openSync(logFile, 'w');
    const bin = join(this.root, 'dist/src/bin/distrunner-agent.js');
    const launch = shebangLaunch(bin);
    // unshare and bash exec in turn: the agent keeps the pid spawned here (its CPU is read from it).
    const namespace = bind
      ? [
          'unshare',
          '--mount',
          '--propagation',
          'private',
          'bash',
          '-c',
          'mount --bind "$1" "$2" && shift 2 && exec "$@"',
          'bash',
          bind.source,
          bind.target,
        ]
      : [];
    const argv = withOpenFilesRaised([...namespace, process.execPath, ...launch.nodeArgs, ...(ownNodeArgs ?? nodeArgs), bin, '--config', configFile]);
    const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', log, log], detached: true, env: { ...process.env, ...launch.env } });
    closeSync(log);
    const agent = { name, addresses, child, logFile, configFile };
    agent.ready = (async () => {
      for (let waited = 0; waited < 120_000; waited += 100) {
        if (child.exitCode !== null) throw new Error(`agent ${name} exited: ${readFileSync(logFile, 'utf8').slice(-500)}`);
        const log = readFileSync(logFile, 'utf8');
        if (log.includes('"msg":"listening"') && (!config.broker || log.includes('"msg":"connected to the broker"'))) return;
        await sleep(100);
      }
      throw new Error(`agent ${name} did not start listening within 120 s`);
    })();
    return agent;
  }

  agentFor(address) {
    return this.agents.find((agent) => agent.addresses.includes(address));
  }

  /** The agent process itself (bash exec'd into node, so the same pid). */
  pidOf(agent) {
    return agent.child.pid;
  }

  /**
   * CPU seconds of every agent, commands they ran included, and of the children still
   * running: between runs that is the orphan reaper's helper shell, whose work (two lines
   * read per command) is the agent's too.
   */
  cpuSeconds() {
    const tree = (pid) => processCpuSeconds(pid) + childPids(pid).reduce((sum, child) => sum + processCpuSeconds(child), 0);
    return this.agents.reduce((sum, agent) => sum + tree(agent.child.pid), 0);
  }

  rssOf(agent) {
    return rssBytes(agent.child.pid);
  }

  /** Children of the agent running `program` (the agent also has a helper shell of its own). */
  commandsRunningUnder(agent, program) {
    return childPids(agent.child.pid).filter((pid) => commandName(pid) === program).length;
  }

  /**
   * An inventory with every host, groups n<N> for the first N hosts, and `extra` host and
   * group lines; with a broker, also its hosts and groups bn<N> of the first N of them.
   */
  writeInventory(file, groupSizes, extra = { hosts: [], groups: [] }, brokerGroupSizes = []) {
    const lines = ['hosts:'];
    for (let i = 1; i <= this.hosts; i += 1) lines.push(`  ${hostName(i)}: { address: ${hostAddress(i)}, port: ${AGENT_PORT} }`);
    // A brokered host's address is its agent's: nothing dials it (--broker).
    const agentCount = Math.min(this.hosts, this.maxAgents);
    for (let i = 1; i <= (this.brokerHosts ?? 0); i += 1) {
      lines.push(`  ${brokerHostName(i)}: { address: ${hostAddress(((i - 1) % agentCount) + 1)}, port: ${AGENT_PORT} }`);
    }
    lines.push(...extra.hosts, 'groups:');
    for (const n of groupSizes) lines.push(`  n${n}: [${directHostPatterns(n).join(', ')}]`);
    for (const n of brokerGroupSizes) lines.push(`  bn${n}: ['${n > 1 ? `b[00001-${brokerHostName(n).slice(1)}]` : brokerHostName(1)}']`);
    lines.push(...extra.groups);
    writeFileSync(file, `${lines.join('\n')}\n`);
    return file;
  }

  async stop() {
    const alive = this.agents.filter((agent) => agent.child.exitCode === null && agent.child.signalCode === null);
    await Promise.all(
      alive.map(
        (agent) =>
          new Promise((resolve) => {
            agent.child.once('exit', resolve);
            agent.child.kill('SIGKILL');
          }),
      ),
    );
  }
}
