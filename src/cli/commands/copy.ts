// `distrun copy SRC... DEST`: send local files and directories to every selected host,
// atomically per file, with one result per entry and per host (changed, unchanged,
// failed). Each host's agent runs its file receiver as the run-as user (protocol 5).
import type { Command } from 'commander';
import { CopyFeeder } from '../execution/copy-feeder.js';
import { OptionError } from '../../errors.js';
import { runTransfer, type TransferOptions } from '../execution/transfer-run.js';
import { collectSources, type SourceEntry } from '../execution/copy-sources.js';
import { SharedSources } from '../execution/shared-source.js';
import { addConnectionOptions, addSelectionOptions, addTransferOptions } from '../options.js';
import { CopyLines, copyExitCode } from '../output/copy-report.js';
import { writeHostLines } from '../output/host-lines.js';
import type { OutputStreams } from '../output/renderers.js';
import { count } from '../plural.js';
import { resolveTargets, type SelectionOptions } from '../targeting/select.js';

interface CopyOptions extends SelectionOptions, TransferOptions {
  recursive?: boolean;
  preserve?: boolean;
  backup?: boolean;
  dryRun?: boolean;
  quiet?: boolean;
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
    .option('--backup', 'keep each replaced file as NAME.~N~');
  addTransferOptions(command, 'copy', 'print the hosts and the entries that would be sent, and send nothing').action(
    async (paths: string[], opts: CopyOptions) => {
      process.exitCode = await copyFiles(paths, opts);
    },
  );
}

async function copyFiles(paths: readonly string[], opts: CopyOptions, io: OutputStreams = process): Promise<number> {
  if (paths.length < 2) throw new OptionError('copy needs at least one source and a destination: distrun copy SRC... DEST');
  const sources = paths.slice(0, -1);
  const dest = paths[paths.length - 1]!;
  if (!dest.startsWith('/')) throw new OptionError(`the destination must be an absolute path on the hosts, got '${dest}'`);
  const targets = resolveTargets(opts);
  const entries = await collectSources(sources, { recursive: opts.recursive === true, preserve: opts.preserve === true });
  if (opts.dryRun) {
    for (const { entry } of entries)
      io.stdout.write(`${entry.type} ${entry.path}${entry.size !== undefined ? ` (${count(entry.size, 'byte')})` : ''}\n`);
    writeHostLines(targets, io.stdout, false);
    return 0;
  }
  const lines = new CopyLines(io, opts.quiet === true, 'copy');
  const shared = new SharedSources();
  const copy = { dest, sources: sources.length, preserve: opts.preserve === true, backup: opts.backup === true };
  const { reports, interrupted } = await runTransfer(targets, { copy, stdin: true }, opts, {
    start: (session) => {
      const feeder = new CopyFeeder(session, entries as SourceEntry[], shared, (entry) => lines.entry(session.target.name, entry));
      void feeder.run();
      return { entries: feeder.results };
    },
    done: (report) => lines.hostDone(report),
    note: (note) => io.stderr.write(`distrun: ${note}\n`),
  });
  lines.finish(reports);
  return copyExitCode(reports, interrupted);
}
