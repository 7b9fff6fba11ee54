// `distrun COMMAND...`: select hosts, run the command on all of them, render, exit code.
import { once } from 'node:events';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { ErrorCodes, OptionError, UsageError } from '../../errors.js';
import { ENV_NAME_PATTERN } from '../../protocol/constants.js';
import { defaultSessionOptions, type SessionOptions } from '../../protocol/messages.js';
import type { BrokerRun } from '../execution/broker-transport.js';
import { routeTargets } from '../execution/broker-route.js';
import { CLIENT_SOFTWARE, hostSessionFactory, openBroker, openClient, saveTlsTickets, type ClientTls } from '../execution/client.js';
import { Fanout, fanoutWithinFileLimit, scheduleFor, type FanoutLimits } from '../execution/fanout.js';
import type { RunRequest } from '../execution/host-session.js';
import { InputBroadcast } from '../execution/input-broadcast.js';
import { LocalTerminal } from '../execution/local-terminal.js';
import { runExitCode } from '../execution/outcome.js';
import { readScript, scriptArgv } from '../execution/script.js';
import { ExitCode } from '../exit-codes.js';
import { writeHostLines } from '../output/host-lines.js';
import { OutdirRenderer } from '../output/outdir.js';
import { ProgressLine } from '../output/progress.js';
import { GatherRenderer } from '../output/gather.js';
import { JsonRenderer } from '../output/json.js';
import { LineRenderer } from '../output/line.js';
import { RendererSet, writeTo, type OutputStreams, type Renderer } from '../output/renderers.js';
import { RecordRenderer, type RunRecord, keepRun } from '../output/run-record.js';
import { count } from '../plural.js';
import { foldHosts } from '../targeting/host-range.js';
import type { Target } from '../targeting/model.js';
import { resolveTargets, type SelectionOptions } from '../targeting/select.js';

export interface RunOptions extends SelectionOptions {
  fanout: number;
  stdin?: boolean;
  tty?: boolean;
  broadcast?: boolean;
  stderr: boolean;
  shell?: boolean;
  connectTimeout: number;
  timeout: number | undefined;
  /** --broker: the brokers, and the way to hosts nothing else is said of (broker-route.ts). */
  broker?: string;
  pki: string | undefined;
  tokenFile: string | undefined;
  json?: boolean;
  gather?: boolean;
  dryRun?: boolean;
  outdir?: string;
  quiet?: boolean;
  script?: string;
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

/** `--env NAME=value` options as a map; a bad name or a missing `=` is a usage error. */
function parseEnvAssignments(assignments: readonly string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const assignment of assignments) {
    const eq = assignment.indexOf('=');
    const name = eq > 0 ? assignment.slice(0, eq) : '';
    if (!ENV_NAME_PATTERN.test(name)) throw new OptionError(`--env takes NAME=value with a valid variable name, got '${assignment}'`);
    env[name] = assignment.slice(eq + 1);
  }
  return env;
}

const DEFAULT_CONFIRM_ABOVE = 50;

/**
 * Above DISTRUN_CONFIRM_ABOVE hosts (default 50), an interactive run asks first — the
 * host count, the folded host list and the command — unless --yes. Scripts (stdin not a
 * terminal) are never asked.
 */
async function confirmLargeRun(
  targets: readonly Target[],
  argv: readonly string[],
  opts: RunOptions,
  io: OutputStreams & { stdin: Readable },
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

/** What a run's record says was run (for --script: the script, not its wrapper). */
type RecordedCommand = Pick<RunRecord, 'command' | 'script' | 'stdin' | 'parent' | 'shell' | 'stderr' | 'timeout'>;

/** Everything a run will do, decided from the words and flags before anything is loaded, dialled or asked. */
interface RunPlan {
  targets: readonly Target[];
  /** The argv that travels (with --shell: the words as one script, as ssh joins them). */
  argv: string[];
  /** The argv as the agent runs it (what --dry-run shows). */
  shownArgv: string[];
  /** The session's options; a terminal's size and type are added when it is opened. */
  options: SessionOptions;
  /** Hosts in flight (before the open-files limit), batches, --max-fail. */
  schedule: FanoutLimits;
  /** stdin: the local stdin goes to every host; script: the script does; terminal: the keys do (--tty). */
  input: 'none' | 'stdin' | 'script' | 'terminal';
  /** The script's bytes (--script), sent as the command's stdin. */
  script?: Buffer;
  screen: { format: 'json' | 'gather' | 'lines'; prefix: boolean; neutralize: boolean };
  recorded: RecordedCommand;
}

/** Where a plan takes what is not in the words: the hosts and the script's bytes. */
export interface PlanSources {
  /** Hosts chosen already (rerun); otherwise `resolveTargets(opts)` is asked. */
  chosenTargets?: readonly Target[];
  resolveTargets(opts: RunOptions): readonly Target[];
  readScript(file: string): Buffer;
}

/** The plan of `distrun [options] COMMAND...`; every option value is checked here, in the order a user meets them. */
export function planRun(words: string[], opts: RunOptions, sources: PlanSources): RunPlan {
  const script = opts.script;
  const wantsStdin = opts.stdin === true || opts.tty === true || script !== undefined;
  if (wantsStdin && opts.inventory?.includes('-') && !sources.chosenTargets) {
    throw new OptionError('-i - reads the inventory from stdin: it cannot go with -t, --tty or --script, which need stdin too');
  }
  if (script !== undefined && (opts.stdin || opts.shell || opts.tty)) {
    throw new OptionError('--script sends the script over stdin: it cannot go with -t, --tty or --shell');
  }
  // A script needs no words: they are only its arguments.
  if (words.length === 0 && script === undefined) throw new OptionError('no command given: distrun [options] [--] COMMAND [ARGS...]');
  if (opts.cwd !== undefined && !opts.cwd.startsWith('/')) throw new OptionError(`--cwd needs an absolute path, got '${opts.cwd}'`);
  const targets = sources.chosenTargets ?? sources.resolveTargets(opts);
  const env = parseEnvAssignments(opts.env ?? []);
  const schedule = scheduleFor(opts, targets.length);
  const tty = opts.tty === true && !opts.dryRun;
  if (tty) checkTerminal(opts, targets.length);
  // --script: a wrapper runs, fed the script on stdin; the record names the script and its
  // arguments, so that rerun sends it again.
  const scriptBytes = script === undefined ? undefined : sources.readScript(script);
  const argv = scriptBytes ? scriptArgv(scriptBytes, words) : opts.shell ? [words.join(' ')] : words;
  const shell = opts.shell === true;
  const input = tty ? 'terminal' : scriptBytes ? 'script' : opts.stdin ? 'stdin' : 'none';
  return {
    targets,
    argv,
    shownArgv: shell ? ['/bin/sh', '-c', ...argv] : argv,
    options: {
      ...defaultSessionOptions(),
      stdin: input !== 'none',
      stderr: opts.stderr,
      shell,
      timeoutMs: (opts.timeout ?? 0) * 1000,
      cwd: opts.cwd,
      env,
    },
    schedule,
    input,
    ...(scriptBytes ? { script: scriptBytes } : {}),
    screen: {
      format: opts.json ? 'json' : opts.gather ? 'gather' : 'lines',
      // One host's terminal is shown as it is (escape sequences and all); several get prefixes.
      prefix: opts.prefix && !(tty && targets.length === 1),
      neutralize: opts.rawControlChars !== true,
    },
    recorded: {
      command: words,
      ...(script !== undefined ? { script: resolve(script) } : {}),
      stdin: opts.stdin === true && script === undefined,
      parent: opts.rerunOf,
      shell,
      stderr: opts.stderr,
      timeout: opts.timeout,
    },
  };
}

export async function runCommand(
  command: string[],
  opts: RunOptions,
  io: OutputStreams & { stdin: Readable } = process,
  /** Hosts chosen already (rerun); otherwise resolved from the selection options. */
  chosenTargets?: Target[],
): Promise<number> {
  const planned = planRun(command, opts, { chosenTargets, resolveTargets, readScript });
  const routed = routeTargets(planned.targets, opts);
  const plan = { ...planned, targets: routed.targets };
  if (opts.dryRun) {
    // Nothing is loaded or dialled: the hosts, and the argv exactly as it would travel.
    io.stdout.write(`argv: ${JSON.stringify(plan.shownArgv)}\n`);
    writeHostLines(plan.targets, io.stdout, false);
    return 0;
  }
  return executeRun(plan, routed.urls, opts, io);
}

async function executeRun(plan: RunPlan, brokers: string[] | undefined, opts: RunOptions, io: OutputStreams & { stdin: Readable }): Promise<number> {
  const { targets } = plan;
  const terminal = plan.input === 'terminal' ? LocalTerminal.open() : undefined;
  if (!(await confirmLargeRun(targets, plan.argv, opts, io))) {
    io.stderr.write('distrun: not confirmed; nothing was run\n');
    return ExitCode.INTERRUPTED;
  }
  const { tls: client, token } = openClient(opts);
  // All brokers down: said now, before anything is opened or shown.
  const broker = await openBroker(brokers, opts, client, plan.schedule.fanout);
  try {
    return await runOnHosts(plan, opts, io, { client, token, broker, terminal });
  } finally {
    await broker?.close();
  }
}

async function runOnHosts(
  plan: RunPlan,
  opts: RunOptions,
  io: OutputStreams & { stdin: Readable },
  {
    client,
    token,
    broker,
    terminal,
  }: { client: ClientTls; token: Buffer | undefined; broker: BrokerRun | undefined; terminal: LocalTerminal | undefined },
): Promise<number> {
  const { targets } = plan;
  const request: RunRequest = {
    argv: plan.argv,
    options: terminal ? { ...plan.options, pty: terminal.size, term: terminal.type } : plan.options,
    token,
    software: CLIENT_SOFTWARE,
  };
  const limits = { connectTimeoutMs: opts.connectTimeout * 1000, commandTimeoutMs: request.options.timeoutMs };
  // A live progress line on a terminal, except for machine-readable output.
  const progress =
    plan.screen.format !== 'json' && !terminal && ProgressLine.enabled(io.stderr, opts.quiet === true)
      ? new ProgressLine(io.stderr, targets.length)
      : undefined;
  // What goes to the screen first takes the progress line away, so the two never mix.
  const screenIo: OutputStreams = progress ? { ...io, beforeWrite: () => progress.clear() } : io;
  // Checked, and cleared of an earlier run's files, before any command runs.
  const outdir =
    opts.outdir !== undefined
      ? OutdirRenderer.open(opts.outdir, targets, (problem) => writeTo(screenIo, 'stderr', `distrun: ${problem}\n`))
      : undefined;
  const { format, prefix, neutralize } = plan.screen;
  const screen: Renderer =
    format === 'json'
      ? new JsonRenderer(screenIo)
      : format === 'gather'
        ? new GatherRenderer(screenIo, { neutralize })
        : new LineRenderer(screenIo, { prefix, hostCount: targets.length, neutralize });
  const recorder = new RecordRenderer();
  // The progress line finishes first, so that it is gone before the summary.
  const renderer = new RendererSet([...(progress ? [progress] : []), screen, recorder, ...(outdir ? [outdir] : [])]);
  const input = plan.input === 'none' ? undefined : new InputBroadcast(plan.input === 'script' ? Readable.from([plan.script!]) : io.stdin);

  const schedule = {
    ...plan.schedule,
    fanout: fanoutWithinFileLimit(plan.schedule.fanout, (note) => io.stderr.write(`distrun: ${note}\n`)),
  };
  const fanout = new Fanout(targets, schedule, hostSessionFactory(request, client, limits, broker), {
    onStart: (session) => {
      renderer.hostStarted(session);
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
    saveTlsTickets(client);
    // The --outdir files are complete, or known not to be, before the exit code is decided.
    await renderer.close();
    const outputLost = (outdir?.problems.length ?? 0) > 0;
    if (outputLost)
      writeTo(
        screenIo,
        'stderr',
        `distrun: --outdir ${opts.outdir} is incomplete: ${count(outdir!.problems.length, 'file')} could not be written (above)\n`,
      );
    const exitCode = outputLost && interrupts === 0 ? ExitCode.CANNOT_RUN : runExitCode(results, interrupts > 0);
    renderer.finish(results, exitCode);
    const record = recorder.record({ ...plan.recorded, exitCode }, results);
    keepRun(record, io.stderr);
    return exitCode;
  } finally {
    terminal?.restore();
    stopResizing?.();
    process.off('SIGINT', onInterrupt);
    input?.close();
  }
}

/** `--tty`: what it cannot go with, and that keys going to several hosts is what the user wants. */
function checkTerminal(opts: RunOptions, hosts: number): void {
  const clash = [opts.json && '--json', opts.gather && '--gather'].find(Boolean);
  if (clash) throw new OptionError(`--tty cannot go with ${clash}`);
  if (hosts > 1 && !opts.broadcast) {
    throw new UsageError(`--tty on ${count(hosts, 'host')} would send every key you type to all of them; add --broadcast if that is what you want`);
  }
}

/** `distrun rerun` of a recorded command: the same command and options, on the hosts rerun chose. */
export function rerunCommand(run: RunRecord, opts: object, targets: Target[]): Promise<number> {
  return runCommand(
    run.command,
    {
      ...(opts as RunOptions),
      shell: run.shell,
      stdin: run.stdin,
      stderr: run.stderr,
      timeout: run.timeout,
      script: run.script,
      prefix: true,
      rerunOf: run.id,
    },
    process,
    targets,
  );
}
