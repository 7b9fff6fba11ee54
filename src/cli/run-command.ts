// `distrun COMMAND...`: select hosts, run the command on all of them, render, exit code.
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { ErrorCodes, FileError, OptionError, UsageError } from '../errors.js';
import { ENV_NAME_PATTERN } from '../protocol/constants.js';
import { defaultSessionOptions } from '../protocol/messages.js';
import { defaultPkiDir } from '../pki/pki-paths.js';
import { SOFTWARE_VERSION } from '../version.js';
import { describeSystemError } from '../system-errors.js';
import { hostSessionFactory, loadClientTls, saveTlsSessions } from './client-tls.js';
import { ExitCode, runExitCode } from './exit-codes.js';
import { foldHosts } from './host-range.js';
import { dialAddress } from './host-label.js';
import { Fanout, countOrPercent, fanoutWithinFileLimit } from './fanout.js';
import type { HostSession, RunRequest } from './host-session.js';
import { LocalTerminal } from './local-terminal.js';
import { ProgressLine } from './progress.js';
import { RecordRenderer, runsDir, saveRun } from './run-record.js';
import { scriptRun } from './script.js';
import { findInventorySources, loadInventories, selectTargets, type Inventory, type Target } from './inventory.js';
import { OutdirRenderer } from './outdir.js';
import { count } from './plural.js';
import { GatherRenderer, JsonRenderer, LineRenderer, RendererSet, type OutputStreams, type Renderer } from './output.js';

// A host in flight costs the client about a millisecond of CPU and one socket; most of its
// time is round trips. 256 keeps a remote fleet's round trips overlapping where clush's 64
// would queue them, and is lowered to fit `ulimit -n` (docs/benchmarks.md).
export const DEFAULT_FANOUT = 256;
export const DEFAULT_CONNECT_TIMEOUT_S = 10;

export interface SelectionOptions {
  /** -i, repeatable; `-` is stdin. */
  inventory?: string[];
  /** --ansible-inventory: read the inventory through Ansible's ansible-inventory. */
  ansibleInventory?: boolean;
  group?: string[];
  hosts?: string[];
  exclude?: string[];
}

export interface RunOptions extends SelectionOptions {
  fanout: number;
  stdin?: boolean;
  tty?: boolean;
  broadcast?: boolean;
  stderr: boolean;
  shell?: boolean;
  connectTimeout: number;
  timeout: number | undefined;
  pki: string | undefined;
  tokenFile: string | undefined;
  json?: boolean;
  gather?: boolean;
  dryRun?: boolean;
  outdir?: string;
  quiet?: boolean;
  script?: string;
  /** Set by --script: what the run record names instead of the wrapper. */
  recordAs?: { command: string[]; script: string };
  yes?: boolean;
  cwd?: string;
  env?: string[];
  batch?: string;
  batchWait?: number;
  maxFail?: string;
  prefix: boolean;
  /** Set by rerun: the run this one runs again (its record's `parent`). */
  rerunOf?: string;
  /** --raw-control-chars: the hosts' output goes to the terminal untouched. */
  rawControlChars?: boolean;
}

export function resolveTargets(opts: SelectionOptions): Target[] {
  return resolveSelection(opts).targets;
}

/** The inventory (if any) and the hosts the selection options choose from it. */
export function resolveSelection(opts: SelectionOptions): { inventory: Inventory | undefined; targets: Target[] } {
  const sources = findInventorySources(opts.inventory);
  const inventory = sources ? loadInventories(sources, { throughAnsible: opts.ansibleInventory === true }) : undefined;
  return { inventory, targets: selectTargets(inventory, { groups: opts.group ?? [], hosts: opts.hosts ?? [], exclude: opts.exclude ?? [] }) };
}

/** `--env NAME=value` options as a map; a bad name or a missing `=` is a usage error. */
export function parseEnvAssignments(assignments: readonly string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const assignment of assignments) {
    const eq = assignment.indexOf('=');
    const name = eq > 0 ? assignment.slice(0, eq) : '';
    if (!ENV_NAME_PATTERN.test(name)) throw new OptionError(`--env takes NAME=value with a valid variable name, got '${assignment}'`);
    env[name] = assignment.slice(eq + 1);
  }
  return env;
}

export function readToken(file: string | undefined): Buffer | undefined {
  if (!file) return undefined;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new FileError(`cannot read token file ${file}: ${describeSystemError(err)}`);
  }
  const token = text.replace(/[\r\n]+$/, '');
  if (token === '') throw new UsageError(`token file ${file} is empty`);
  return Buffer.from(token, 'utf8');
}

export const DEFAULT_CONFIRM_ABOVE = 50;

/**
 * Above DISTRUN_CONFIRM_ABOVE hosts (default 50), an interactive run asks first — the
 * host count, the folded host list and the command — unless --yes. Scripts (stdin not a
 * terminal) are never asked.
 */
async function confirmLargeRun(
  targets: readonly Target[], argv: readonly string[], opts: RunOptions, io: OutputStreams & { stdin: Readable },
): Promise<boolean> {
  const limit = Number(process.env.DISTRUN_CONFIRM_ABOVE ?? DEFAULT_CONFIRM_ABOVE);
  if (opts.yes || !(io.stdin as NodeJS.ReadStream).isTTY || !(targets.length > limit)) return true;
  const command = opts.shell ? argv.join(' ') : JSON.stringify(argv);
  io.stderr.write(`distrun: run ${command} on ${count(targets.length, 'host')} (${foldHosts(targets.map((t) => t.name))})? [y/N] `);
  const prompt = createInterface({ input: io.stdin, terminal: false });
  // End of input (Ctrl-D) counts as no.
  const [answer] = (await Promise.race([once(prompt, 'line'), once(prompt, 'close').then(() => [''])])) as [string];
  prompt.close();
  io.stdin.pause();
  return /^y(es)?$/i.test(answer.trim());
}

/** Sends local stdin to every host, including hosts that start after part of it was read. */
class InputBroadcast {
  private readonly history: Buffer[] = [];
  private ended = false;
  private readonly listeners = new Set<HostSession>();

  constructor(private readonly input: Readable) {
    input.on('data', (chunk: Buffer) => {
      this.history.push(chunk);
      for (const session of this.listeners) session.sendInput(chunk);
    });
    input.on('end', () => {
      this.ended = true;
      for (const session of this.listeners) session.endInput();
      this.listeners.clear();
    });
    input.on('error', () => input.emit('end'));
  }

  attach(session: HostSession): void {
    for (const chunk of this.history) session.sendInput(chunk);
    if (this.ended) {
      session.endInput();
      return;
    }
    this.listeners.add(session);
    session.once('done', () => this.listeners.delete(session));
  }

  close(): void {
    this.input.destroy();
  }
}

export async function runCommand(
  command: string[],
  opts: RunOptions,
  io: OutputStreams & { stdin: Readable } = process,
  /** Hosts chosen already (rerun); otherwise resolved from the selection options. */
  chosenTargets?: Target[],
): Promise<number> {
  if ((opts.stdin || opts.tty || opts.script !== undefined) && opts.inventory?.includes('-') && !chosenTargets) {
    throw new OptionError('-i - reads the inventory from stdin: it cannot go with -t, --tty or --script, which need stdin too');
  }
  if (opts.script !== undefined) {
    if (opts.stdin || opts.shell) throw new OptionError('--script sends the script over stdin: it cannot go with -t or --shell');
    const script = scriptRun(opts.script, command);
    const recordAs = { command, script: resolve(opts.script) };
    return runCommand(script.argv, { ...opts, script: undefined, stdin: true, recordAs }, { ...io, stdin: Readable.from([script.content]) }, chosenTargets);
  }
  if (command.length === 0) throw new OptionError('no command given: distrun [options] [--] COMMAND [ARGS...]');
  if (opts.cwd !== undefined && !opts.cwd.startsWith('/')) throw new OptionError(`--cwd needs an absolute path, got '${opts.cwd}'`);
  const targets = chosenTargets ?? resolveTargets(opts);
  const argv = opts.shell ? [command.join(' ')] : command;
  // Every option value is checked before anything is loaded (the PKI) or asked.
  const env = parseEnvAssignments(opts.env ?? []);
  const batchSize = countOrPercent(opts.batch, targets.length, '--batch') ?? Infinity;
  const maxFail = countOrPercent(opts.maxFail, targets.length, '--max-fail') ?? Infinity;
  const terminal = opts.tty && !opts.dryRun ? openTerminal(opts, targets.length) : undefined;
  if (opts.dryRun) {
    // Nothing is loaded or dialled: the hosts, and the argv exactly as it would travel.
    io.stdout.write(`argv: ${JSON.stringify(opts.shell ? ['/bin/sh', '-c', ...argv] : argv)}\n`);
    writeHostLines(targets, io.stdout, false);
    return 0;
  }
  if (!(await confirmLargeRun(targets, argv, opts, io))) {
    io.stderr.write('distrun: not confirmed; nothing was run\n');
    return ExitCode.INTERRUPTED;
  }
  const client = loadClientTls(opts.pki ?? defaultPkiDir());
  const token = readToken(opts.tokenFile ?? process.env.DISTRUN_TOKEN_FILE);

  const request: RunRequest = {
    // With --shell the words form one script, as ssh joins its arguments.
    argv,
    options: {
      ...defaultSessionOptions(),
      stdin: opts.stdin === true,
      stderr: opts.stderr,
      shell: opts.shell === true,
      timeoutMs: (opts.timeout ?? 0) * 1000,
      cwd: opts.cwd,
      env,
      ...(terminal ? { stdin: true, pty: terminal.size, term: terminal.type } : {}),
    },
    token,
    software: `distrun/${SOFTWARE_VERSION}`,
  };
  const limits = { connectTimeoutMs: opts.connectTimeout * 1000, commandTimeoutMs: request.options.timeoutMs };
  // A live progress line on a terminal, except for machine-readable output.
  const progress = !opts.json && !terminal && ProgressLine.enabled(io.stderr, opts.quiet === true)
    ? new ProgressLine(io.stderr, targets.length)
    : undefined;
  const screenIo = progress ? progress.guard(io) : io;
  // Checked, and cleared of an earlier run's files, before any command runs.
  const outdir = opts.outdir !== undefined
    ? OutdirRenderer.open(opts.outdir, targets, (problem) => screenIo.stderr.write(`distrun: ${problem}\n`))
    : undefined;
  const neutralize = opts.rawControlChars !== true;
  const screen: Renderer = opts.json
    ? new JsonRenderer(screenIo)
    : opts.gather
      ? new GatherRenderer(screenIo, { neutralize })
      // One host's terminal is shown as it is (escape sequences and all); several get prefixes.
      : new LineRenderer(screenIo, { prefix: opts.prefix && !(terminal && targets.length === 1), hostCount: targets.length, neutralize });
  const recorder = new RecordRenderer();
  // The progress line finishes first, so that it is gone before the summary.
  const renderer = new RendererSet([...(progress ? [progress] : []), screen, recorder, ...(outdir ? [outdir] : [])]);
  const input = opts.stdin || terminal ? new InputBroadcast(io.stdin) : undefined;

  const schedule = {
    fanout: fanoutWithinFileLimit(Math.min(opts.fanout, targets.length), (note) => io.stderr.write(`distrun: ${note}\n`)),
    batchSize,
    batchWaitMs: (opts.batchWait ?? 0) * 1000,
    maxFail,
  };
  const fanout = new Fanout(targets, schedule, hostSessionFactory(request, client, limits), {
    onStart: (session) => {
      renderer.attach(session);
      input?.attach(session);
    },
    onDone: (result) => renderer.hostDone(result),
  });

  // First Ctrl-C: forward SIGINT to every running command and start no more hosts.
  // Second: disconnect from every agent, which then kills what remains.
  let interrupts = 0;
  const onInterrupt = (): void => {
    interrupts += 1;
    if (interrupts === 1) {
      fanout.stop();
      for (const session of fanout.running) session.signal('SIGINT');
      io.stderr.write(`distrun: interrupt sent to ${count(fanout.running.size, 'running command')}; Ctrl-C again to abort\n`);
    } else {
      for (const session of fanout.running) session.abort(ErrorCodes.INTERRUPTED, 'aborted by user');
    }
  };
  process.on('SIGINT', onInterrupt);
  terminal?.enterRaw();
  const stopResizing = terminal?.onResize((size) => {
    for (const session of fanout.running) session.resize(size);
  });
  try {
    const results = await fanout.run();
    terminal?.restore();
    saveTlsSessions(client);
    // The --outdir files are complete, or known not to be, before the exit code is decided.
    await renderer.close();
    const outputLost = (outdir?.problems.length ?? 0) > 0;
    if (outputLost) screenIo.stderr.write(`distrun: --outdir ${opts.outdir} is incomplete: ${count(outdir!.problems.length, 'file')} could not be written (above)\n`);
    const exitCode = outputLost && interrupts === 0 ? ExitCode.CANNOT_RUN : runExitCode(results, interrupts > 0);
    renderer.finish(results, exitCode);
    // A --script run is recorded as the script and its arguments, so that rerun sends it again.
    const record = recorder.record({
      parent: opts.rerunOf,
      command: opts.recordAs?.command ?? command, script: opts.recordAs?.script,
      shell: opts.shell === true, stdin: opts.recordAs ? false : opts.stdin === true, stderr: opts.stderr, timeout: opts.timeout, exitCode,
    }, results);
    try {
      saveRun(record);
    } catch (err) {
      io.stderr.write(`distrun: warning: could not save the run record in ${runsDir()}: ${(err as Error).message}\n`);
    }
    return exitCode;
  } finally {
    terminal?.restore();
    stopResizing?.();
    process.off('SIGINT', onInterrupt);
    input?.close();
  }
}

/** `--tty`: checks what it cannot go with, and that keys going to several hosts is what the user wants. */
function openTerminal(opts: RunOptions, hosts: number): LocalTerminal {
  const clash = [opts.json && '--json', opts.gather && '--gather', opts.script !== undefined && '--script'].find(Boolean);
  if (clash) throw new OptionError(`--tty cannot go with ${clash}`);
  if (hosts > 1 && !opts.broadcast) {
    throw new UsageError(`--tty on ${count(hosts, 'host')} would send every key you type to all of them; add --broadcast if that is what you want`);
  }
  return LocalTerminal.open();
}

/** One line per host: name, the address:port dialled, and with `explain` what selected it. */
export function listHosts(
  opts: SelectionOptions & { explain?: boolean }, out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr,
): number {
  const { inventory, targets } = resolveSelection(opts);
  writeHostLines(targets, out, opts.explain === true);
  // Which reader took an Ansible inventory (distrun's own, or Ansible's ansible-inventory):
  // on stderr, so that stdout stays one line per host.
  if (opts.explain && inventory?.ansible) err.write(`distrun: inventory ${inventory.file}: read by ${inventory.ansible.reader}\n`);
  return 0;
}

function writeHostLines(targets: readonly Target[], out: NodeJS.WritableStream, explain: boolean): void {
  const width = Math.max(...targets.map((t) => t.name.length));
  const dialWidth = Math.max(...targets.map((t) => dialAddress(t).length));
  for (const t of targets) {
    const line = `${t.name.padEnd(width)}  ${explain ? `${dialAddress(t).padEnd(dialWidth)}  ${t.via ?? ''}` : dialAddress(t)}`;
    out.write(`${line.trimEnd()}\n`);
  }
}
