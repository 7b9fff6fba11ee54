// `distrun copy SRC... DEST`: send local files and directories to every selected host,
// atomically per file, with one result per entry and per host (changed, unchanged,
// failed). Each host's agent runs its file receiver as the run-as user (protocol 5).
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { OptionError } from '../../errors.js';
import { OWNER_PATTERN } from '../../protocol/file-messages.js';
import { CopyFeeder } from '../execution/copy-feeder.js';
import { collectSources } from '../execution/copy-sources.js';
import { SharedSources } from '../execution/shared-source.js';
import { routeTargets } from '../execution/broker-route.js';
import { runTransfer, type TransferOptions } from '../execution/transfer-run.js';
import { addConnectionOptions, addSelectionOptions, addTransferOptions } from '../options.js';
import { CopyJson, CopyLines, copyExitCode, copyHostStatus, type CopyReporter } from '../output/copy-report.js';
import { copyRecord, type RunRecord, keepRun } from '../output/run-record.js';
import type { Target } from '../targeting/model.js';
import { writeHostLines } from '../output/host-lines.js';
import type { OutputStreams } from '../output/renderers.js';
import { count } from '../plural.js';
import { resolveTargets, type SelectionOptions } from '../targeting/select.js';

interface CopyOptions extends SelectionOptions, TransferOptions {
  recursive?: boolean;
  preserve?: boolean;
  backup?: boolean;
  owner?: string;
  dryRun?: boolean;
  quiet?: boolean;
  json?: boolean;
  /** Set by rerun: the run this one repeats. */
  rerunOf?: string;
}

export function registerCopyCommand(program: Command): void {
  const command = addConnectionOptions(
    addSelectionOptions(
      program
        .command('copy')
        .description('send local files or directories to every selected host (atomic per file; changed, unchanged or failed per host)')
        .argument('<paths...>', 'SRC... DEST: the local sources, then the path on the hosts (an existing directory, or the new name of one source)'),
    ),
  )
    .option('-r, --recursive', 'copy directories (links in them are copied as links)')
    .option('-p, --preserve', 'keep mode bits and modification times (without it: permission bits, mtime now)')
    .option('--backup', 'keep each replaced file as NAME.~N~')
    .option('--owner <user[:group]>', "owner of the written files, where the agent's policy lets you choose (default: the run-as user)")
    .option('--json', 'JSON Lines events on stdout: start, one file event per entry, the end of each host, the summary (docs/json-events.md)');
  addTransferOptions(command, 'copy', 'print the hosts and the entries that would be sent, and send nothing').action(
    async (paths: string[], opts: CopyOptions) => {
      process.exitCode = await copyFiles(paths, opts);
    },
  );
}

/** `distrun rerun` of a recorded copy: the same sources, destination and flags, on the hosts rerun chose. */
export function rerunCopy(run: RunRecord, opts: object, targets: Target[]): Promise<number> {
  const { sources, dest, recursive, preserve, backup, owner } = run.copy!;
  return copyFiles(
    [...sources, dest],
    { ...(opts as CopyOptions), recursive, preserve, backup, owner, timeout: run.timeout, rerunOf: run.id },
    process,
    targets,
  );
}

async function copyFiles(paths: readonly string[], opts: CopyOptions, io: OutputStreams = process, chosenTargets?: Target[]): Promise<number> {
  if (paths.length < 2) throw new OptionError('copy needs at least one source and a destination: distrun copy SRC... DEST');
  const sources = paths.slice(0, -1);
  const dest = paths[paths.length - 1]!;
  if (!dest.startsWith('/')) throw new OptionError(`the destination must be an absolute path on the hosts, got '${dest}'`);
  if (opts.owner !== undefined && !OWNER_PATTERN.test(opts.owner)) throw new OptionError(`--owner takes USER or USER:GROUP, got '${opts.owner}'`);
  const routed = routeTargets(chosenTargets ?? resolveTargets(opts), opts);
  const { targets } = routed;
  const entries = await collectSources(sources, { recursive: opts.recursive === true, preserve: opts.preserve === true });
  if (opts.dryRun) {
    for (const { entry } of entries)
      io.stdout.write(`${entry.type} ${entry.path}${entry.size !== undefined ? ` (${count(entry.size, 'byte')})` : ''}\n`);
    writeHostLines(targets, io.stdout, false);
    return 0;
  }
  const startedAt = new Date();
  const copy = {
    dest,
    sources: sources.length,
    preserve: opts.preserve === true,
    backup: opts.backup === true,
    ...(opts.owner !== undefined ? { owner: opts.owner } : {}),
  };
  const reporter: CopyReporter = opts.json ? new CopyJson(io) : new CopyLines(io, opts.quiet === true);
  const shared = new SharedSources();
  const { reports: ordered, interrupted } = await runTransfer(routed, { copy, stdin: true }, opts, {
    start: (session) => {
      reporter.hostStarted(session.target);
      const feeder = new CopyFeeder(session, entries, shared, (entry) => reporter.entry(session.target.name, entry));
      feeder.start();
      return { entries: feeder.results };
    },
    done: (report) => reporter.hostDone(report),
    note: (note) => io.stderr.write(`distrun: ${note}\n`),
  });
  const exitCode = copyExitCode(ordered, interrupted);
  reporter.finish(ordered, exitCode);
  const record = copyRecord(
    {
      startedAt,
      parent: opts.rerunOf,
      timeout: opts.timeout,
      exitCode,
      copy: {
        sources: sources.map((s) => resolve(s)),
        dest,
        recursive: opts.recursive === true,
        preserve: opts.preserve === true,
        backup: opts.backup === true,
        ...(opts.owner !== undefined ? { owner: opts.owner } : {}),
      },
    },
    ordered.map((report) => ({ result: report.result, ...copyHostStatus(report) })),
  );
  keepRun(record, io.stderr);
  return exitCode;
}
