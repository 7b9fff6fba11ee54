#!/usr/bin/env node
// `npm run bench [-- SECTION...]`: DistRunner against ssh+xargs and pdsh, measured side by
// side on this one machine. Agents listen on loopback addresses 127.0.2.1.. (one
// address per host); a private sshd answers on the same addresses. Prints the tables
// and writes them into docs/benchmarks.md (between the bench markers). Sections: fanout,
// latency, stream, exact, copy, memory, profile, broker (the same agents also through a
// 3-node nats-server cluster, by name) (default: all). Settings: docs/benchmarks.md.
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  createReadStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { cpus, release, totalmem, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServer } from 'node:net';
import { spawn } from 'node:child_process';
import { DEFAULT_FANOUT } from '../dist/src/cli/options.js';
import { NATS_SERVER, startBrokerCluster } from './broker-cluster.mjs';
import { AGENT_PORT, LoopbackFleet, brokerHostName, hostName } from './bench/loopback-fleet.mjs';
import { maxRssOf, peakMemory, timeCommand, underTime } from './bench/measure.mjs';
import { bucketsOfDirectory } from './bench/profile.mjs';
import { renderReport, writeReport } from './bench/report.mjs';
import { PrivateSshd, pdshVersion, sshUnavailable, sshVersion } from './bench/ssh-peers.mjs';
import { have, peakRssBytes, processCpuSeconds, rssBytes, run, runSync, sampleMax, shellQuote, sleep } from './bench/tools.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const DISTRUN = join(root, 'dist/src/bin/distrun.js');
const SECTIONS = ['fanout', 'latency', 'stream', 'exact', 'copy', 'memory', 'profile', 'broker'];
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
/** Left free on the copy section's disk, beyond the source and N copies of it. */
const COPY_DISK_RESERVE = 4 * GiB;
const SSH_CIPHER = 'aes128-gcm@openssh.com';
const SSH_KEX = 'curve25519-sha256';

function readSettings(env, args) {
  const list = (value, fallback) => (value ?? fallback).split(/[\s,]+/).filter(Boolean);
  const sections = args.length > 0 ? args : list(env.BENCH_SECTIONS, SECTIONS.join(' '));
  for (const section of sections) {
    if (!SECTIONS.includes(section)) throw new Error(`unknown section '${section}' (sections: ${SECTIONS.join(', ')})`);
  }
  const ns = list(env.BENCH_NS, '10 50 200 1000').map(Number);
  const copyNs = sections.includes('copy') ? list(env.BENCH_COPY_NS, '1 10 50').map(Number) : [];
  const brokerNs = sections.includes('broker') ? list(env.BENCH_BROKER_NS, '1000 10000').map(Number) : [];
  return {
    sections,
    ns,
    brokerNs,
    brokerRuns: Number(env.BENCH_BROKER_RUNS ?? 3),
    // Direct runs next to the broker's, at each of its N, need their hosts.
    maxN: Math.max(...ns, ...copyNs, 1000 * Number(sections.includes('memory')), ...brokerNs),
    peerMaxN: Number(env.BENCH_PEER_MAX_N ?? 200),
    runs: Number(env.BENCH_RUNS ?? 5),
    latencyRuns: Number(env.BENCH_LATENCY_RUNS ?? 30),
    streamRuns: Number(env.BENCH_STREAM_RUNS ?? 3),
    maxAgents: Number(env.BENCH_MAX_AGENTS ?? 200),
    streamBytes: Number(env.BENCH_STREAM_BYTES ?? 1024 * MiB),
    exactBytes: Number(env.BENCH_EXACT_BYTES ?? 10_000_000),
    slowSeconds: Number(env.BENCH_SLOW_SECONDS ?? 60),
    slowRate: Number(env.BENCH_SLOW_RATE ?? 1_000_000),
    copyNs,
    copyBytes: Number(env.BENCH_COPY_BYTES ?? GiB),
    copyRuns: Number(env.BENCH_COPY_RUNS ?? 3),
    copyDir: env.BENCH_COPY_DIR,
    kexes: list(env.BENCH_KEX, 'default curve25519-sha256'),
    out: env.BENCH_OUT ?? join(root, 'docs/benchmarks.md'),
    keep: env.BENCH_KEEP === '1',
    agentNodeArgs: list(env.BENCH_AGENT_NODE_ARGS, ''),
  };
}

function say(text) {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${text}\n`);
}

function freePort() {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function machineDescription() {
  const os = /PRETTY_NAME="([^"]+)"/.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? 'Linux';
  return {
    cpu: `${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores`,
    memory: `${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
    os: `${os}, kernel ${release()}`,
  };
}

function versions(sshd) {
  return {
    node: `${process.version} (OpenSSL ${process.versions.openssl})`,
    distrun: runSync(process.execPath, [DISTRUN, '--version']).stdout.trim(),
    openssh: sshd ? sshVersion() : undefined,
    pdsh: sshd ? pdshVersion() : undefined,
    hyperfine: runSync('hyperfine', ['--version']).stdout.trim(),
  };
}

class Bench {
  constructor(settings, work) {
    this.settings = settings;
    this.work = work;
    this.cache = join(work, 'cache');
    this.inventory = join(work, 'hosts.yaml');
    this.report = { notes: [], fanout: [], latency: [], stream: [], exact: [], copy: undefined, memory: {}, profile: undefined, broker: undefined };
  }

  distrunEnv() {
    return { DISTRUN_PKI: this.fleet.pki, XDG_CACHE_HOME: this.cache, DISTRUN_INVENTORY: this.inventory };
  }

  distrun(args) {
    return [process.execPath, DISTRUN, ...args];
  }

  /** Removes the TLS session tickets: the next run makes full handshakes. */
  coldCacheCommand() {
    return ['rm', '-rf', join(this.cache, 'distrun', 'tls')];
  }

  async setUp() {
    const { settings, work } = this;
    if (settings.sections.includes('copy')) this.copyPlace = this.prepareCopyPlace();
    const copyHosts = Math.max(0, ...(this.copyPlace?.ns ?? []));
    const brokerHosts = Math.max(0, ...settings.brokerNs);
    if (brokerHosts > 0 && !NATS_SERVER)
      this.report.notes.push('nats-server not installed (apt-get install nats-server): the broker section is missing.');
    // The broker's hosts are served by the same agents as the direct ones (names in their certificates).
    const broker =
      brokerHosts > 0 && NATS_SERVER
        ? {
            hosts: brokerHosts,
            start: async (pki) => {
              say('starting a 3-node nats-server cluster on loopback ...');
              this.brokers = await startBrokerCluster({ pki, work, monitor: true });
              return this.brokers.urls;
            },
          }
        : undefined;
    this.fleet = new LoopbackFleet(root, work);
    say(`starting agents for ${settings.maxN} loopback hosts (at most ${settings.maxAgents} agent processes) ...`);
    // Two more agents: one that holds 1,000 sessions, one profiled.
    await this.fleet.start({
      hosts: settings.maxN,
      maxAgents: settings.maxAgents,
      agentNodeArgs: settings.agentNodeArgs,
      bindFor: (i) => (i <= copyHosts ? { source: this.copyPlace.hostDir(i), target: this.copyPlace.dest } : undefined),
      broker,
      extraAgents: [
        // 1,000 handshakes at once from one address: above the agent's default bounds of
        // connections not yet in a session (256 in all, 64 per source), which drop the oldest.
        { name: 'sessions', addresses: ['127.0.1.1'], config: { maxPendingConnections: 2048, maxPendingConnectionsPerSource: 2048 } },
        // 200 handshakes at once from one address, to an agent slowed by the profiler: above the
        // default bound of connections not yet in a session per source (64), which drops the oldest.
        {
          name: 'profiled',
          addresses: ['127.0.1.2'],
          config: { maxPendingConnectionsPerSource: 256 },
          nodeArgs: ['--cpu-prof', '--cpu-prof-dir', join(work, 'prof-agent')],
        },
      ],
    });
    // Many names for one agent's address: range keys, as an inventory would write them.
    this.fleet.writeInventory(
      this.inventory,
      [...new Set([1, ...settings.ns, ...(this.copyPlace?.ns ?? []), ...(this.brokers ? settings.brokerNs : [])])].sort((a, b) => a - b),
      {
        hosts: [`  's[0001-1000]': { address: 127.0.1.1, port: ${AGENT_PORT} }`, `  'p[0001-0200]': { address: 127.0.1.2, port: ${AGENT_PORT} }`],
        groups: ["  sessions1000: ['s[0001-1000]']", "  profiled200: ['p[0001-0200]']"],
      },
      this.brokers ? settings.brokerNs : [],
    );
    const why = settings.peerMaxN < 1 ? 'BENCH_PEER_MAX_N is 0' : sshUnavailable();
    if (why) {
      this.report.notes.push(`ssh peers not measured: ${why}.`);
    } else {
      say('starting a private sshd on loopback ...');
      const perHost = this.copyPlace ? { port: await freePort(), hostsDir: this.copyPlace.hostsDir, target: this.copyPlace.dest } : undefined;
      this.sshd = await new PrivateSshd(work, await freePort()).start(Math.min(settings.maxN, settings.peerMaxN), perHost);
      if (!have('pdsh')) this.report.notes.push('pdsh not installed (apt-get install pdsh): its rows are missing.');
    }
    this.report.machine = machineDescription();
    this.report.versions = versions(this.sshd);
    // One run to fill the TLS ticket cache and warm every agent, as a fleet that has served
    // commands before (at most 1,000 at a time: one CLI cannot start 10,000 handshakes at once).
    const warm = await run(process.execPath, [DISTRUN, '-g', `n${settings.maxN}`, '-f', String(Math.min(settings.maxN, 1000)), '-q', 'true'], {
      env: { ...process.env, ...this.distrunEnv() },
    });
    if (warm.code !== 0) throw new Error(`the warm-up run failed: ${warm.stderr.slice(-500)}`);
  }

  async time(label, argv, options = {}) {
    const result = await timeCommand({ work: this.work, label, argv, runs: this.settings.runs, ...options });
    say(result.error ? `${label}: FAILED ${result.error}` : `${label}: median ${result.median.toFixed(3)} s`);
    return result;
  }

  /** distrun and the peers at N hosts, `command` being ['true'] or ['uname', '-n']. */
  async fanoutRows(n, command) {
    const rows = [];
    const agents = () => this.fleet.cpuSeconds();
    const env = this.distrunEnv();
    const distrunArgs = ['-g', `n${n}`, '-f', String(n), '-q', ...command];
    const check = await this.validate('distrun', this.distrun(distrunArgs), n, command, env);
    rows.push({
      tool: 'distrun',
      variant: 'resumed TLS',
      hosts: n,
      ...(check ?? (await this.time(`distrun ${n} ${command[0]}`, this.distrun(distrunArgs), { env, serverCpu: agents }))),
    });
    if (command[0] === 'true') {
      rows.push({
        tool: 'distrun',
        variant: 'full TLS handshakes',
        hosts: n,
        ...(await this.time(`distrun cold ${n}`, this.distrun(distrunArgs), { env, serverCpu: agents, prepare: this.coldCacheCommand() })),
      });
      rows.push({
        tool: 'distrun',
        variant: `default fanout (${DEFAULT_FANOUT})`,
        hosts: n,
        ...(await this.time(`distrun -f${DEFAULT_FANOUT} ${n}`, this.distrun(['-g', `n${n}`, '-q', ...command]), { env, serverCpu: agents })),
      });
    }
    if (!this.sshd || n > this.settings.peerMaxN) return rows;
    const hostsFile = this.sshd.hostsFile(n);
    const sshd = () => this.sshd.cpuSeconds();
    const prepare = this.sshd.waitIdleCommand();
    for (const kex of this.settings.kexes) {
      const config = this.sshd.clientConfig(kex);
      const variant = kex === 'default' ? 'OpenSSH default KEX' : kex;
      const xargs = ['xargs', '-a', hostsFile, '-P', String(n), '-I{}', 'ssh', '-F', config, '-n', '{}', ...command];
      const xargsCheck = await this.validate('ssh+xargs', xargs, n, command);
      rows.push({
        tool: 'ssh+xargs',
        variant,
        hosts: n,
        ...(xargsCheck ?? (await this.time(`xargs-ssh ${kex} ${n} ${command[0]}`, xargs, { serverCpu: sshd, prepare }))),
      });
      if (!have('pdsh')) continue;
      const pdshEnv = { PDSH_SSH_ARGS: `-F ${config} -a -x -l%u %h` };
      const pdsh = ['pdsh', '-R', 'ssh', '-S', '-f', String(n), '-w', `^${hostsFile}`, ...command];
      const pdshCheck = await this.validate('pdsh', pdsh, n, command, pdshEnv);
      rows.push({
        tool: 'pdsh',
        variant,
        hosts: n,
        ...(pdshCheck ?? (await this.time(`pdsh ${kex} ${n} ${command[0]}`, pdsh, { env: pdshEnv, serverCpu: sshd, prepare }))),
      });
    }
    return rows;
  }

  /** One untimed run whose output must be right: exit 0 and, for uname, one line per host. Returns an error row or undefined. */
  async validate(tool, argv, n, command, env = {}) {
    const result = await run(argv[0], argv.slice(1), { env: { ...process.env, ...env } });
    const lines = result.stdout.toString().split('\n').filter(Boolean);
    let problem;
    if (result.code !== 0) problem = `exit ${result.code}: ${result.stderr.trim().split('\n').pop() ?? ''}`;
    else if (command[0] === 'uname' && lines.length !== n) problem = `${lines.length} output lines for ${n} hosts`;
    if (problem) say(`${tool} ${n} ${command.join(' ')}: INVALID ${problem}`);
    return problem ? { error: problem.slice(0, 200) } : undefined;
  }

  async fanout() {
    for (const command of [['true'], ['uname', '-n']]) {
      for (const n of this.settings.ns) this.report.fanout.push({ n, command: command.join(' '), rows: await this.fanoutRows(n, command) });
    }
  }

  async latency() {
    const env = this.distrunEnv();
    const runs = this.settings.latencyRuns;
    const one = ['-H', hostName(1), 'true'];
    const rows = [
      {
        tool: 'node -e 0',
        variant: 'Node.js start-up alone, for scale',
        ...(await this.time('node -e 0', [process.execPath, '-e', '0'], { runs, warmup: 3 })),
      },
      { tool: 'distrun', variant: 'resumed TLS', ...(await this.time('distrun -H h true', this.distrun(one), { runs, warmup: 3, env })) },
      {
        tool: 'distrun',
        variant: 'full TLS handshake',
        ...(await this.time('distrun -H h true (cold)', this.distrun(one), { runs, warmup: 3, env, prepare: this.coldCacheCommand() })),
      },
    ];
    for (const kex of this.sshd ? this.settings.kexes : []) {
      rows.push({
        tool: 'ssh',
        variant: kex === 'default' ? 'OpenSSH default KEX' : kex,
        ...(await this.time(`ssh ${kex} h true`, ['ssh', '-F', this.sshd.clientConfig(kex), hostName(1), 'true'], {
          runs,
          warmup: 3,
          prepare: this.sshd.waitIdleCommand(),
        })),
      });
    }
    this.report.latency = rows;
  }

  async stream() {
    const bytes = this.settings.streamBytes;
    const command = ['head', '-c', String(bytes), '/dev/zero'];
    const agent = this.fleet.agentFor('127.0.2.1');
    const tools = [
      {
        tool: 'distrun',
        variant: '-N (raw stdout)',
        argv: this.distrun(['-H', hostName(1), '-N', ...command]),
        env: this.distrunEnv(),
        serverCpu: () => processCpuSeconds(agent.child.pid),
      },
    ];
    if (this.sshd) {
      const config = this.sshd.clientConfig('default');
      const serverCpu = () => this.sshd.cpuSeconds();
      tools.push({ tool: 'ssh', variant: 'chacha20-poly1305 (default)', argv: ['ssh', '-F', config, hostName(1), ...command], serverCpu });
      tools.push({
        tool: 'ssh',
        variant: 'aes128-gcm',
        argv: ['ssh', '-F', config, '-c', 'aes128-gcm@openssh.com', hostName(1), ...command],
        serverCpu,
      });
    }
    for (const { tool, variant, argv, env, serverCpu } of tools) {
      // Untimed: every byte arrives.
      const counted = await countBytes(argv, env);
      const timed =
        counted === bytes
          ? await this.time(`${tool} ${variant} stream`, argv, { runs: this.settings.streamRuns, warmup: 0, env, serverCpu })
          : { error: `${counted} bytes arrived of ${bytes}` };
      this.report.stream.push({ tool, variant, bytes, ...timed, mbPerS: timed.median ? bytes / timed.median / 1e6 : undefined });
    }
  }

  async exact() {
    const dir = join(this.work, 'exact');
    mkdirSync(dir);
    const files = {
      [`${this.settings.exactBytes} random bytes`]: writeTo(join(dir, 'random.bin'), randomBytes(this.settings.exactBytes)),
      'text without final newline': writeTo(join(dir, 'nonl.txt'), 'line one\nline two'),
      'CRLF and blank lines at the end': writeTo(join(dir, 'crlf.txt'), 'a\r\nb\r\n\r\n\n\n'),
      '1 MB of NUL bytes': writeTo(join(dir, 'zeros.bin'), Buffer.alloc(1_000_000)),
    };
    const tools = [{ tool: 'distrun', argv: (file) => this.distrun(['-H', hostName(1), '-N', 'cat', file]), env: this.distrunEnv() }];
    if (this.sshd) tools.push({ tool: 'ssh', argv: (file) => ['ssh', '-F', this.sshd.clientConfig('default'), hostName(1), 'cat', file] });
    if (this.sshd && have('pdsh')) {
      tools.push({
        tool: 'pdsh',
        argv: (file) => ['pdsh', '-R', 'ssh', '-N', '-w', hostName(1), 'cat', file],
        env: { PDSH_SSH_ARGS: `-F ${this.sshd.clientConfig('default')} -a -x -l%u %h` },
      });
    }
    for (const { tool, argv, env } of tools) {
      for (const [what, file] of Object.entries(files)) {
        const expected = createHash('sha256').update(readFileSync(file)).digest('hex');
        const result = await run(argv(file)[0], argv(file).slice(1), { env: { ...process.env, ...env } });
        const got = createHash('sha256').update(result.stdout).digest('hex');
        this.report.exact.push({
          tool,
          what,
          exact: result.code === 0 && got === expected,
          bytes: result.stdout.length,
          expectedBytes: readFileSync(file).length,
        });
      }
    }
  }

  /**
   * Where the copy section writes: one directory per host (hNNNN) and the one path DEST that
   * every host is told to write to. Each host's agent (and each ssh session on the per-host
   * port) runs in its own mount namespace with its host's directory bound over DEST. Host
   * counts that the disk or the agents cannot hold are lowered, with a note.
   */
  prepareCopyPlace() {
    const { settings } = this;
    if (process.getuid?.() !== 0) {
      this.report.notes.push('copy not measured: its per-host destinations are mount namespaces, which need root.');
      return { ns: [] };
    }
    const base = settings.copyDir ?? this.work;
    mkdirSync(base, { recursive: true });
    const dir = mkdtempSync(join(base, 'distrun-bench-copy-'));
    const [fstype, avail] = runSync('df', ['-B1', '--output=fstype,avail', dir]).stdout.trim().split('\n').pop().trim().split(/\s+/);
    const bytes = settings.copyBytes;
    const fit = Math.floor((Number(avail) - COPY_DISK_RESERVE - bytes) / bytes);
    const agents = Math.min(settings.maxN, settings.maxAgents);
    const where = `${dir} (${fstype}${fstype === 'tmpfs' ? ', in RAM' : ''}, ${(Number(avail) / GiB).toFixed(0)} GiB free)`;
    say(`copy: writing under ${where}`);
    const ns = [];
    for (const n of settings.copyNs) {
      const m = Math.min(n, fit, agents);
      if (m < n) {
        this.report.notes.push(
          m < 1
            ? `copy at N=${n} not measured: ${where} cannot hold ${mib(bytes)} twice with ${mib(COPY_DISK_RESERVE)} to spare.`
            : `copy at N=${n} measured at N=${m}: ${m === fit ? `${where} holds ${m} copies of ${mib(bytes)} (and the source) with ${mib(COPY_DISK_RESERVE)} to spare` : `BENCH_MAX_AGENTS is ${agents} and each host needs an agent of its own`}.`,
        );
      }
      if (m >= 1 && !ns.includes(m)) ns.push(m);
    }
    const place = {
      dir,
      fstype,
      ns,
      source: join(dir, 'source', 'payload.bin'),
      dest: join(dir, 'dest'),
      hostsDir: join(dir, 'hosts'),
      hostDir: (i) => join(dir, 'hosts', hostName(i)),
      hostFile: (i) => join(dir, 'hosts', hostName(i), 'payload.bin'),
    };
    mkdirSync(join(dir, 'source'));
    mkdirSync(place.dest);
    for (let i = 1; i <= Math.max(0, ...ns); i += 1) mkdirSync(place.hostDir(i), { recursive: true });
    return place;
  }

  /** Removes every host's copy (and any temporary file a failed copy left). */
  clearCopiesCommand() {
    const hosts = shellQuote(this.copyPlace.hostsDir);
    const idle = this.sshd ? ` && while pgrep -P ${this.sshd.child.pid} >/dev/null; do sleep 0.02; done` : '';
    return ['bash', '-c', `rm -f ${hosts}/h*/payload.bin ${hosts}/h*/.distrun-tmp-* && sync${idle}`];
  }

  async clearCopies() {
    const [program, ...args] = this.clearCopiesCommand();
    await run(program, args);
  }

  /** Every one of the first n hosts has the source's bytes, and nothing landed anywhere else. */
  async checkCopies(n, expected) {
    const place = this.copyPlace;
    if (readdirSync(place.dest).length > 0) return `files in ${place.dest} itself (a host without its own directory)`;
    for (let i = 1; i <= n; i += 1) {
      const file = place.hostFile(i);
      if (!existsSync(file)) return `${hostName(i)}: no file`;
      if (statSync(file).size !== this.settings.copyBytes) return `${hostName(i)}: ${statSync(file).size} of ${this.settings.copyBytes} B`;
      if ((await sha256File(file)) !== expected) return `${hostName(i)}: sha256 differs`;
    }
    for (let i = n + 1; existsSync(place.hostDir(i)); i += 1) if (existsSync(place.hostFile(i))) return `${hostName(i)} got a file too`;
    return undefined;
  }

  /** One untimed copy from clean destinations that must deliver every byte; returns the problem, if any. */
  async validateCopy(tool, argv, n, expected, env = {}) {
    await this.clearCopies();
    const result = await run(argv[0], argv.slice(1), { env: { ...process.env, ...env } });
    const problem = result.code !== 0 ? `exit ${result.code}: ${result.stderr.trim().split('\n').pop() ?? ''}` : await this.checkCopies(n, expected);
    if (problem) say(`copy ${tool} ${n}: INVALID ${problem}`);
    return problem?.slice(0, 200);
  }

  async copy() {
    const place = this.copyPlace;
    const { copyBytes: bytes, copyRuns: runs } = this.settings;
    if (place.ns.length === 0) return;
    say(`copy: writing ${mib(bytes)} of random bytes ...`);
    const expected = writeRandomFile(place.source, bytes);
    const env = this.distrunEnv();
    const agents = () => this.fleet.cpuSeconds();
    const distrunArgv = (n) => this.distrun(['copy', '-g', `n${n}`, '-f', String(n), '-q', place.source, `${place.dest}/`]);
    const report = { bytes, fstype: place.fstype, runs, groups: [], recopy: undefined };
    this.report.copy = report;
    try {
      for (const n of place.ns) {
        const rows = [];
        const delivered = n * bytes;
        // Untimed: peak RSS, and every host's file checked.
        await this.clearCopies();
        const memory = peakMemory(distrunArgv(n), env);
        const problem = memory.code !== 0 ? `exit ${memory.code}: ${memory.stderr.trim().split('\n').pop()}` : await this.checkCopies(n, expected);
        if (problem) say(`copy distrun ${n}: INVALID ${problem}`);
        rows.push({
          tool: 'distrun',
          variant: 'resumed TLS',
          delivered,
          maxRss: memory.maxRss,
          ...(problem
            ? { error: problem.slice(0, 200) }
            : await this.time(`distrun copy ${n}`, distrunArgv(n), { runs, warmup: 0, env, serverCpu: agents, prepare: this.clearCopiesCommand() })),
        });
        if (this.sshd && n <= this.settings.peerMaxN) {
          const sshd = () => this.sshd.cpuSeconds();
          const hostsFile = this.sshd.hostsFile(n);
          const config = this.sshd.clientConfig('default');
          const sshOptions = ['-o', `Ciphers=${SSH_CIPHER}`, '-o', `KexAlgorithms=${SSH_KEX}`];
          const variant = `${SSH_CIPHER.split('@')[0]}, ${SSH_KEX}`;
          // One command per host, each naming its host's own directory.
          const scp = [
            'xargs',
            '-a',
            hostsFile,
            '-P',
            String(n),
            '-I{}',
            'scp',
            '-q',
            '-F',
            config,
            ...sshOptions,
            place.source,
            `{}:${place.hostsDir}/{}/`,
          ];
          const scpProblem = await this.validateCopy('scp', scp, n, expected);
          rows.push({
            tool: 'scp+xargs',
            variant,
            delivered,
            ...(scpProblem
              ? { error: scpProblem }
              : await this.time(`scp+xargs copy ${n}`, scp, { runs, warmup: 0, serverCpu: sshd, prepare: this.clearCopiesCommand() })),
          });
          if (have('pdcp')) {
            // One DEST for all hosts: the per-host port binds each host's directory over it.
            const pdcpEnv = { PDSH_SSH_ARGS: `-F ${config} -p ${this.sshd.perHostPort} ${sshOptions.join(' ')} -a -x -l%u %h` };
            const pdcp = ['pdcp', '-R', 'ssh', '-f', String(n), '-w', `^${hostsFile}`, place.source, `${place.dest}/`];
            const pdcpProblem = await this.validateCopy('pdcp', pdcp, n, expected, pdcpEnv);
            rows.push({
              tool: 'pdcp -R ssh',
              variant,
              delivered,
              ...(pdcpProblem
                ? { error: pdcpProblem }
                : await this.time(`pdcp copy ${n}`, pdcp, { runs, warmup: 0, env: pdcpEnv, serverCpu: sshd, prepare: this.clearCopiesCommand() })),
            });
          } else {
            this.report.notes.push('pdcp not installed (apt-get install pdsh): its copy rows are missing.');
          }
        }
        report.groups.push({ n, rows });
      }
      report.recopy = await this.recopy(distrunArgv, expected);
    } finally {
      await this.clearCopies();
      rmSync(place.source, { force: true });
    }
  }

  /** The same file to 10 hosts (or the largest N measured) that have it already: a hash each, nothing sent. */
  async recopy(distrunArgv, expected) {
    const n = Math.min(10, Math.max(...this.copyPlace.ns));
    const env = this.distrunEnv();
    const argv = distrunArgv(n);
    const first = await this.validateCopy('distrun', argv, n, expected, env);
    if (first) return { n, error: first };
    const again = await run(argv[0], argv.slice(1), { env: { ...process.env, ...env } });
    const unchanged = new RegExp(`\\b${n} unchanged\\b`).test(again.stderr) || (n === 1 && /\bunchanged\b/.test(again.stderr));
    if (again.code !== 0 || !unchanged) {
      const error = `exit ${again.code}, not reported unchanged: ${again.stderr.trim().split('\n').pop()}`.slice(0, 200);
      say(`copy re-copy ${n}: INVALID ${error}`);
      return { n, error };
    }
    const timed = await this.time(`distrun re-copy ${n} unchanged`, argv, {
      runs: this.settings.copyRuns,
      warmup: 0,
      env,
      serverCpu: () => this.fleet.cpuSeconds(),
    });
    const problem = await this.checkCopies(n, expected);
    return { n, ...(problem ? { error: `after the re-copies: ${problem}` } : timed) };
  }

  /** Messages agents have sent and received through the brokers so far (nats-server's /connz, summed over the nodes). */
  async brokerMessages() {
    let fromAgents = 0;
    let toAgents = 0;
    for (const node of this.brokers.nodes) {
      const connz = await (await fetch(`${node.monitor}/connz?auth=true&limit=100000`)).json();
      for (const c of connz.connections ?? []) {
        if (!String(c.authorized_user ?? '').startsWith('OU=agent,')) continue;
        fromAgents += c.in_msgs;
        toAgents += c.out_msgs;
      }
    }
    return { fromAgents, toAgents };
  }

  brokerCpuSeconds() {
    return this.brokers.nodes.reduce((sum, node) => sum + processCpuSeconds(node.child.pid), 0);
  }

  /**
   * One untimed run under /usr/bin/time that must account for every host: exit 0 and, for
   * `uname -n`, one line from each host by name. Returns peak RSS, messages, or the problem.
   */
  async checkedBrokerRun(argv, names, command, env) {
    const before = this.brokers ? await this.brokerMessages() : undefined;
    const [program, ...args] = underTime(argv);
    const result = await run(program, args, { env: { ...process.env, ...env } });
    const after = this.brokers ? await this.brokerMessages() : undefined;
    const { maxRss, stderr } = maxRssOf(result.stderr);
    let problem;
    if (result.code !== 0) {
      // distrun's summary: the line after "N hosts: ..." names the reason and the hosts.
      const lines = stderr.split('\n').filter(Boolean);
      const summary = lines.findIndex((l) => /^distrun: \d+ hosts: /.test(l));
      problem = `exit ${result.code}: ${(summary >= 0 ? lines.slice(summary, summary + 3) : lines.slice(-2)).join(' / ')}`;
    } else if (command[0] === 'uname') {
      const seen = new Set(
        result.stdout
          .toString()
          .split('\n')
          .filter(Boolean)
          .map((line) => line.slice(0, line.indexOf(':'))),
      );
      const missing = names.filter((name) => !seen.has(name));
      if (missing.length > 0 || seen.size !== names.length)
        problem = `${seen.size} hosts answered of ${names.length} (missing: ${missing.slice(0, 3).join(', ')})`;
    }
    return {
      problem,
      maxRss,
      messages: before && { fromAgents: after.fromAgents - before.fromAgents, toAgents: after.toAgents - before.toAgents },
    };
  }

  /** distrun through the 3-node broker cluster at N hosts, and directly at the N the direct fleet has, in the same run. */
  async broker() {
    if (!this.brokers) return;
    const env = this.distrunEnv();
    const runs = this.settings.brokerRuns;
    const agents = () => this.fleet.cpuSeconds();
    const report = { runs, nodes: this.brokers.nodes.length, agents: this.fleet.agents.length, rows: [] };
    this.report.broker = report;
    // The first run through the broker fills the ticket cache for every brokered host.
    const warm = await run(
      process.execPath,
      [DISTRUN, '--broker', this.brokers.urls, '-g', `bn${Math.max(...this.settings.brokerNs)}`, '-q', 'true'],
      {
        env: { ...process.env, ...env },
      },
    );
    if (warm.code !== 0) say(`broker warm-up failed: ${warm.stderr.slice(-300)}`);
    for (const command of [['true'], ['uname', '-n']]) {
      for (const n of this.settings.brokerNs) {
        // At the default fanout too: what a user types, and the CLI's memory bounded by it.
        const atDefault = n > DEFAULT_FANOUT;
        const direct = n <= this.fleet.hosts;
        const variants = [
          ...(direct ? [{ path: 'direct', fanout: n }] : []),
          { path: 'broker', fanout: n },
          ...(direct && atDefault ? [{ path: 'direct', fanout: DEFAULT_FANOUT }] : []),
          ...(atDefault ? [{ path: 'broker', fanout: DEFAULT_FANOUT }] : []),
        ];
        for (const { path, fanout } of variants) {
          const brokered = path === 'broker';
          const names = Array.from({ length: n }, (_, i) => (brokered ? brokerHostName(i + 1) : hostName(i + 1)));
          const argv = this.distrun([
            ...(brokered ? ['--broker', this.brokers.urls] : []),
            '-g',
            `${brokered ? 'bn' : 'n'}${n}`,
            '-f',
            String(fanout),
            '-q',
            ...command,
          ]);
          const label = `${path} ${n} -f${fanout} ${command[0]}`;
          const checked = await this.checkedBrokerRun(argv, names, command, env);
          if (checked.problem) say(`${label}: INVALID ${checked.problem.slice(0, 300)}`);
          const row = {
            path,
            command: command.join(' '),
            hosts: n,
            fanout,
            maxRss: checked.maxRss,
            messages: brokered ? checked.messages : undefined,
          };
          if (checked.problem) {
            // The table keeps the summary ("N hosts: ..."), not the host lists after it.
            report.rows.push({ ...row, error: checked.problem.split(' / ')[0].slice(0, 200) });
            continue;
          }
          const broker0 = this.brokerCpuSeconds();
          const timed = await this.time(label, argv, { runs, warmup: 0, env, serverCpu: agents });
          report.rows.push({ ...row, ...timed, brokerCpu: (this.brokerCpuSeconds() - broker0) / runs });
        }
      }
    }
    report.brokerRss = this.brokers.nodes.map((node) => ({ name: node.name, rss: rssBytes(node.child.pid), peak: peakRssBytes(node.child.pid) }));
  }

  async memory() {
    const env = this.distrunEnv();
    const memory = this.report.memory;
    say('memory: distrun at 1,000 hosts ...');
    for (const fanout of ['1000', undefined]) {
      const result = peakMemory(this.distrun(['-g', 'n1000', ...(fanout ? ['-f', fanout] : []), '-q', 'uname', '-n']), env);
      memory[fanout ? 'cli1000' : 'cli1000DefaultFanout'] = { maxRss: result.maxRss, code: result.code };
    }
    say(`memory: agent while a reader takes ${this.settings.streamBytes} B at ${this.settings.slowRate} B/s for ${this.settings.slowSeconds} s ...`);
    memory.slowReader = await this.slowReader();
    say('memory: one agent holding 1,000 sessions ...');
    memory.sessions1000 = await this.thousandSessions();
  }

  /** The agent's peak RSS while its client reads slowly, then fast; every byte must arrive. */
  async slowReader() {
    const agent = this.fleet.agentFor('127.0.2.1');
    const bytes = this.settings.streamBytes;
    const before = this.fleet.rssOf(agent);
    const child = spawn(process.execPath, [DISTRUN, '-H', hostName(1), '-N', 'head', '-c', String(bytes), '/dev/zero'], {
      env: { ...process.env, ...this.distrunEnv() },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const peak = sampleMax(() => this.fleet.rssOf(agent), 200);
    let received = 0;
    const slowUntil = Date.now() + this.settings.slowSeconds * 1000;
    let peakSlow = 0;
    await new Promise((resolve) => {
      child.stdout.on('data', (chunk) => {
        received += chunk.length;
        if (Date.now() < slowUntil) {
          // Hold the pipe until this chunk's share of the rate has passed.
          child.stdout.pause();
          setTimeout(() => child.stdout.resume(), (chunk.length / this.settings.slowRate) * 1000);
        } else if (!peakSlow) {
          peakSlow = peak.current();
        }
      });
      child.once('close', resolve);
    });
    return {
      before,
      peakSlow: peakSlow || peak.current(),
      peak: peak.stop(),
      received,
      bytes,
      code: child.exitCode,
      slowSeconds: this.settings.slowSeconds,
    };
  }

  async thousandSessions() {
    const agent = this.fleet.agents.find((a) => a.name === 'sessions');
    const before = this.fleet.rssOf(agent);
    const child = spawn(process.execPath, [DISTRUN, '-g', 'sessions1000', '-f', '1000', '-q', 'sleep', '15'], {
      env: { ...process.env, ...this.distrunEnv() },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (c) => {
      stderr += c;
    });
    const peak = sampleMax(() => this.fleet.rssOf(agent), 100);
    let concurrent = 0;
    const closed = new Promise((resolve) => child.once('close', resolve));
    while (child.exitCode === null) {
      concurrent = Math.max(concurrent, this.fleet.commandsRunningUnder(agent, 'sleep'));
      await Promise.race([sleep(100), closed]);
    }
    await closed;
    return { before, peak: peak.stop(), concurrent, code: child.exitCode, error: child.exitCode === 0 ? undefined : stderr.trim().split('\n').pop() };
  }

  async profile() {
    const dir = join(this.work, 'prof-client');
    const env = this.distrunEnv();
    const runs = 5;
    for (let i = 0; i < runs; i += 1) {
      const argv = [
        process.execPath,
        ...(i === runs - 1 ? ['--cpu-prof', '--cpu-prof-dir', dir] : []),
        DISTRUN,
        '-g',
        'profiled200',
        '-f',
        '200',
        '-q',
        'true',
      ];
      const result = await run(argv[0], argv.slice(1), { env: { ...process.env, ...env } });
      if (result.code !== 0) throw new Error(`profiled run failed: ${result.stderr.slice(-300)}`);
    }
    // The agent writes its profile when it exits.
    const agent = this.fleet.agents.find((a) => a.name === 'profiled');
    const exited = new Promise((resolve) => agent.child.once('exit', resolve));
    agent.child.kill('SIGTERM');
    await exited;
    this.report.profile = {
      sessions: 200,
      agentSessions: 200 * runs + 1,
      client: bucketsOfDirectory(dir),
      agent: bucketsOfDirectory(join(this.work, 'prof-agent')),
    };
  }
}

/** Writes `bytes` random bytes to `file`; returns their sha256 (hex). */
function writeRandomFile(file, bytes) {
  const hash = createHash('sha256');
  const fd = openSync(file, 'w');
  try {
    for (let left = bytes; left > 0; ) {
      const chunk = randomBytes(Math.min(left, 16 * MiB));
      for (let off = 0; off < chunk.length; ) off += writeSync(fd, chunk, off);
      hash.update(chunk);
      left -= chunk.length;
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}

function sha256File(file) {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(file, { highWaterMark: 4 * MiB })
      .on('data', (chunk) => hash.update(chunk))
      .once('error', reject)
      .once('end', () => resolve(hash.digest('hex')));
  });
}

const mib = (bytes) => `${(bytes / MiB).toFixed(0)} MiB`;

function writeTo(file, content) {
  writeFileSync(file, content);
  return file;
}

/** Runs `argv` and counts the bytes of its stdout. */
function countBytes(argv, env = {}) {
  return new Promise((resolve) => {
    const child = spawn(argv[0], argv.slice(1), { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'ignore'] });
    let bytes = 0;
    child.stdout.on('data', (c) => {
      bytes += c.length;
    });
    child.once('close', (code) => resolve(code === 0 ? bytes : -1));
  });
}

async function main() {
  const settings = readSettings(process.env, process.argv.slice(2));
  for (const tool of ['hyperfine', '/usr/bin/time']) {
    if (!have(tool)) throw new Error(`${tool} is missing: apt-get install hyperfine time`);
  }
  const work = mkdtempSync(join(tmpdir(), 'distrun-bench-'));
  const bench = new Bench(settings, work);
  const started = Date.now();
  const stop = async () => {
    await bench.fleet?.stop();
    await bench.sshd?.stop();
    await bench.brokers?.stop();
    // The copies' directory goes even with BENCH_KEEP: it can hold many GiB.
    if (bench.copyPlace?.dir) rmSync(bench.copyPlace.dir, { recursive: true, force: true });
    if (!settings.keep) rmSync(work, { recursive: true, force: true });
  };
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => {
      void stop().then(() => process.exit(130));
    });
  }
  try {
    await bench.setUp();
    for (const section of SECTIONS.filter((s) => settings.sections.includes(s))) {
      say(`section ${section}`);
      await bench[section]();
    }
  } finally {
    await stop();
  }
  bench.report.settings = settings;
  bench.report.durationS = (Date.now() - started) / 1000;
  bench.report.date = new Date().toISOString().slice(0, 10);
  const text = renderReport(bench.report);
  process.stdout.write(text);
  if (settings.out !== '-') {
    writeReport(settings.out, text);
    say(`written to ${settings.out}`);
  }
}

main().catch((err) => {
  process.stderr.write(`bench failed: ${err.message}\n`);
  process.exit(1);
});
