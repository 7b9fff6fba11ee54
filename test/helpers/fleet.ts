// Test fixtures over real processes: a PKI made by `distrun certs`, real agent
// processes on loopback, and the real `distrun` binary.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { FrameDecoder, type Frame } from '../../src/protocol/frame-decoder.js';
import { TEMP_PREFIX } from '../../src/safe-paths.js';

export const DISTRUN = fileURLToPath(new URL('../../src/bin/distrun.js', import.meta.url));
export const AGENT = fileURLToPath(new URL('../../src/bin/distrunner-agent.js', import.meta.url));

const cleanups: Array<() => void | Promise<void>> = [];

// Every process a test starts gets SIGKILL if the test worker dies first (an ava timeout
// ends the worker before test.after.always runs), so nothing outlives the suite.
export const SETPRIV = '/usr/bin/setpriv';
/** `prefix`: a command that execs the rest in place, such as `ip netns exec NS` (the pid stays the same). */
function spawnNode(args: string[], options: Parameters<typeof spawn>[2], prefix: string[] = []): ChildProcess {
  const argv = [...prefix, SETPRIV, '--pdeathsig', 'SIGKILL', '--', process.execPath, ...args];
  return spawn(argv[0]!, argv.slice(1), options);
}

/** Registers a cleanup for cleanupAll (run in reverse order of registration). */
export function addCleanup(cleanup: () => void | Promise<void>): void {
  cleanups.push(cleanup);
}

/** Runs every registered cleanup; call from test.after.always. */
export async function cleanupAll(): Promise<void> {
  // Every cleanup runs, even after one failed; the first failure is reported.
  let failure: unknown;
  while (cleanups.length > 0) {
    try {
      await cleanups.pop()!();
    } catch (err) {
      failure ??= err;
    }
  }
  if (failure) throw failure;
}

/** Whether no temporary file of a transfer (`.distrun-tmp-*`) is left anywhere below DIR. */
export function noTemporaries(dir: string): boolean {
  return !readdirSync(dir, { recursive: true }).some((name) => String(name).includes(TEMP_PREFIX));
}

export function tempDir(prefix = 'distrun-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  // Retries: a killed agent's pipe helper may still be removing its FIFOs in there.
  cleanups.push(() => rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 }));
  return dir;
}

// Run records go to a temporary cache, never to the real ~/.cache.
let cacheHome: string | undefined;
/** The XDG_CACHE_HOME every distrun started by these helpers uses. */
export function testCacheHome(): string {
  cacheHome ??= tempDir('distrun-cache-');
  return cacheHome;
}

// What decides colours (and the CLI's own settings) comes from the test, never from the
// shell or CI that runs the suite: Node's hasColors() turns colours off when CI is set.
const INHERITED_SETTINGS = /^(CI|NO_COLOR|FORCE_COLOR|NODE_DISABLE_COLORS|COLORTERM|TMUX|DISTRUN_.*)$/;

/** The environment of a distrun started by a test: the suite's own, minus the settings above, plus `extra`. */
export function distrunEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!INHERITED_SETTINGS.test(name)) env[name] = value;
  return { ...env, XDG_CACHE_HOME: testCacheHome(), ...extra };
}

/** The host names `distrun hosts` printed: the first column of each line. */
export function listedHosts(stdout: Buffer | string): string[] {
  const text = stdout.toString().trim();
  return text === '' ? [] : text.split('\n').map((line) => line.split(/\s+/)[0]!);
}

export interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

export interface RunOptions {
  input?: string | Buffer;
  env?: NodeJS.ProcessEnv;
  /** Run inside this network namespace (`ip netns exec`). */
  netns?: string;
  /** Receives stdout instead of `Result.stdout` (which is then empty): for large outputs. */
  onStdout?: (chunk: Buffer) => void;
  /** The working directory (default: the test's). */
  cwd?: string;
}

/** Runs `distrun` (or the agent binary) synchronously-in-spirit: resolves when it exits. */
export function run(bin: string, args: string[], options: RunOptions = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawnNode(
      [bin, ...args],
      {
        env: distrunEnv(options.env),
        cwd: options.cwd,
        stdio: ['pipe', 'pipe', 'pipe'],
      },
      netnsPrefix(options.netns),
    );
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', options.onStdout ?? ((c: Buffer) => out.push(c)));
    child.stderr!.on('data', (c: Buffer) => err.push(c));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString('utf8') }));
    child.stdin!.on('error', () => {});
    child.stdin!.end(options.input);
  });
}

export function distrun(args: string[], options: RunOptions = {}): Promise<Result> {
  return run(DISTRUN, args, options);
}

const netnsPrefix = (netns: string | undefined): string[] => (netns ? ['ip', 'netns', 'exec', netns] : []);

interface BackgroundRun {
  child: ChildProcess;
  /** Resolves with the exit code (listening from the start, so an early exit is not missed). */
  exit: Promise<number | null>;
  stderr(): string;
}

/** Starts `distrun` without waiting, for tests that signal or kill it. */
export function spawnDistrun(args: string[], env: NodeJS.ProcessEnv = {}, netns?: string): BackgroundRun {
  const child = spawnNode([DISTRUN, ...args], { env: distrunEnv(env), stdio: ['ignore', 'ignore', 'pipe'] }, netnsPrefix(netns));
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  // 'close', not 'exit': stderr may still be arriving when the process has exited.
  const exit = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  cleanups.push(() => {
    child.kill('SIGKILL');
  });
  return { child, exit, stderr: () => stderr };
}

export interface Pki {
  dir: string;
  /** Directory of the agent bundle for `name` (agent.crt, agent.key, ca.crt). */
  agent(name: string): string;
}

/** A PKI made with `distrun certs init`, with one agent bundle for 127.0.0.1 per name. */
export async function makePki(agentNames: string[] = ['agent1']): Promise<Pki> {
  const dir = join(tempDir('distrun-pki-'), 'pki');
  const init = await distrun(['certs', 'init', '--dir', dir]);
  if (init.code !== 0) throw new Error(`certs init failed: ${init.stderr}`);
  for (const name of agentNames) {
    const issued = await distrun(['certs', 'agent', name, '--ip', '127.0.0.1', '--dir', dir]);
    if (issued.code !== 0) throw new Error(`certs agent failed: ${issued.stderr}`);
  }
  return { dir, agent: (name) => join(dir, 'agents', name) };
}

/** A PKI, one agent on loopback, and an inventory file for it: the fixture most tests start from. */
export async function loopbackFleet(inventoryText: (agentPort: number) => string): Promise<{ pki: Pki; agent: RunningAgent; inventory: string }> {
  const pki = await makePki(['agent1']);
  const agent = await startAgent(pki, 'agent1');
  const inventory = join(tempDir(), 'hosts.yaml');
  writeFileSync(inventory, inventoryText(agent.port));
  return { pki, agent, inventory };
}

/**
 * Three agents on loopback, hosts h1..h3 of an inventory with groups `trio` (all) and
 * `one` (h1); `on(group, ...args)` is the distrun arguments that select a group of it.
 */
export async function trioFleet(): Promise<{
  pki: Pki;
  agents: RunningAgent[];
  inventory: string;
  on: (group: string, ...args: string[]) => string[];
}> {
  const names = ['agent1', 'agent2', 'agent3'];
  const pki = await makePki(names);
  const agents = await Promise.all(names.map((name) => startAgent(pki, name)));
  const inventory = join(tempDir(), 'hosts.yaml');
  const hosts = agents.map((a, i) => `  h${i + 1}: { address: 127.0.0.1, port: ${a.port} }`);
  writeFileSync(inventory, ['hosts:', ...hosts, 'groups:', '  trio: [h1, h2, h3]', '  one: [h1]', ''].join('\n'));
  const on = (group: string, ...args: string[]): string[] => ['-i', inventory, '--pki', pki.dir, '-g', group, ...args];
  return { pki, agents, inventory, on };
}

export interface RunningAgent {
  port: number;
  process: ChildProcess;
  /** The agent's configuration file (rewrite it and call reload()). */
  configFile: string;
  /** Every JSON log line so far. */
  logs: Array<Record<string, unknown>>;
  /** Raw stdout so far (to check what never appears in logs). */
  rawLog(): string;
  /** Sends SIGHUP and waits for the agent to log the outcome ('reloaded' or 'reload failed'). */
  reload(): Promise<Record<string, unknown>>;
  /** Waits for a log line with this msg that was not there before `since` lines. */
  waitForLog(msg: string, since?: number): Promise<Record<string, unknown>>;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export interface AgentOptions {
  /** Extra settings for the agent's YAML configuration file. */
  config?: Record<string, unknown>;
  args?: string[];
  /** The agent's environment, on top of this process's. */
  env?: NodeJS.ProcessEnv;
  /** A command that execs the agent in place (e.g. into a network namespace). */
  prefix?: string[];
}

/** Writes an agent configuration for the bundle `name` of `pki`, plus `extra` settings. */
export function writeAgentConfig(pki: Pki, name: string, extra: Record<string, unknown> = {}, file?: string): string {
  const bundle = pki.agent(name);
  const target = file ?? join(tempDir('distrun-agent-'), 'agent.yaml');
  const settings = {
    host: '127.0.0.1',
    port: 0,
    logLevel: 'debug',
    ca: join(bundle, 'ca.crt'),
    cert: join(bundle, 'agent.crt'),
    key: join(bundle, 'agent.key'),
    ...extra,
  };
  writeFileSync(target, JSON.stringify(settings, null, 2)); // JSON is YAML
  return target;
}

/** Starts an agent on 127.0.0.1 with a free port; resolves once it listens. */
export async function startAgent(pki: Pki, name = 'agent1', options: AgentOptions = {}): Promise<RunningAgent> {
  const configFile = writeAgentConfig(pki, name, options.config);
  const child = spawnNode(
    [AGENT, '--config', configFile, ...(options.args ?? [])],
    {
      // Pipes for commands are made in the agent's runtime directory: a temporary one here.
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, RUNTIME_DIRECTORY: tempDir('distrun-run-'), ...options.env },
    },
    options.prefix,
  );
  const logs: Array<Record<string, unknown>> = [];
  let raw = '';
  let pending = '';
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  // 'close': after the last log line has been read, not only after the process ended.
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      raw += chunk.toString();
      pending += chunk.toString();
      const lines = pending.split('\n');
      pending = lines.pop()!;
      for (const line of lines) {
        const entry = JSON.parse(line) as Record<string, unknown>;
        logs.push(entry);
        if (entry.msg === 'listening') resolve(entry.port as number);
        // An agent reached through a broker only: no port.
        if (entry.msg === 'not listening: sessions come through the broker only') resolve(0);
      }
    });
    void exited.then(() => reject(new Error(`agent exited early: ${stderr}`)));
  });
  const waitForLog = async (msg: string, since = 0): Promise<Record<string, unknown>> => {
    const found = () => logs.slice(since).find((l) => l.msg === msg);
    if (!(await waitFor(() => found() !== undefined))) throw new Error(`agent never logged '${msg}'`);
    return found()!;
  };
  const reload = async (): Promise<Record<string, unknown>> => {
    const since = logs.length;
    child.kill('SIGHUP');
    if (!(await waitFor(() => logs.slice(since).some((l) => l.msg === 'reloaded' || l.msg === 'reload failed')))) {
      throw new Error('agent did not log the reload');
    }
    return logs.slice(since).find((l) => l.msg === 'reloaded' || l.msg === 'reload failed')!;
  };
  const stop = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    await exited;
  };
  cleanups.push(() => stop('SIGKILL'));
  // Through a broker: ready once it has subscribed there.
  if (options.config?.broker !== undefined || options.args?.includes('--broker')) await waitForLog('connected to the broker');
  return { port, process: child, configFile, logs, rawLog: () => raw, reload, waitForLog, stop };
}

/**
 * Nine random digits, new in each test worker: every marker processesMatching looks for
 * contains it, so that two suites run side by side (a CI clone and a developer's tree)
 * never see, or stop, each other's processes. Built into a command line, for example as
 * the fraction of a sleep (`sleep 942.${RUN_TOKEN}` sleeps 942 s).
 */
export const RUN_TOKEN = String(randomInt(100_000_000, 1_000_000_000));

/**
 * Processes whose command line contains `marker`, which must contain RUN_TOKEN (ps, not
 * pgrep, to avoid matching ourselves). Every process on the machine is looked at, not
 * only our descendants: a command left behind has been reparented to init.
 */
export function processesMatching(marker: string): string[] {
  if (!marker.includes(RUN_TOKEN)) throw new Error(`processesMatching('${marker}'): the marker does not contain RUN_TOKEN`);
  const ps = spawnSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' });
  return ps.stdout.split('\n').filter((line) => line.includes(marker) && !line.includes('ps -eo'));
}

export async function waitFor(check: () => boolean, timeoutMs = 10_000, stepMs = 50): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  return check();
}

/** A TLS connection to an agent with the client identity in `pkiDir`, for raw protocol tests. */
export function connectRaw(port: number, pkiDir: string): tls.TLSSocket {
  const socket = tls.connect({
    host: '127.0.0.1',
    port,
    minVersion: 'TLSv1.3',
    ca: readFileSync(join(pkiDir, 'ca.crt')),
    cert: readFileSync(join(pkiDir, 'client.crt')),
    key: readFileSync(join(pkiDir, 'client.key')),
  });
  cleanups.push(() => {
    socket.destroy();
  });
  return socket;
}

/** Resident memory of a process, in bytes. */
export function residentBytes(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match?.[1] ?? 0) * 1024;
}

/** Sends raw bytes with the client identity in `pkiDir`; resolves with every frame the agent sent back. */
export function rawExchange(port: number, pkiDir: string, bytes: Buffer[], options: { endAfterWrite?: boolean } = {}): Promise<Frame[]> {
  return new Promise((resolve) => {
    const socket = connectRaw(port, pkiDir);
    const decoder = new FrameDecoder();
    const got: Frame[] = [];
    socket.on('data', (c: Buffer) => got.push(...decoder.push(c)));
    socket.on('error', () => {});
    socket.on('close', () => resolve(got));
    socket.write(Buffer.concat(bytes));
    if (options.endAfterWrite) socket.end();
  });
}

/** The agent's FAI message among `frames`, decoded. */
export function failureIn(frames: Frame[]): { code: string; reason: string } | undefined {
  const fai = frames.find((f) => f.token === 'FAI');
  return fai ? (JSON.parse(fai.payload.toString()) as { code: string; reason: string }) : undefined;
}
