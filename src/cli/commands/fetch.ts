// `distrun fetch REMOTE... LOCALDIR`: collect files (and with -r directories) from every
// selected host into LOCALDIR/HOST/<remote path>, like pdsh's rpdcp and clush --rcopy.
// Each host's agent runs its file sender as the run-as user (protocol 5); this side
// checks the host's name before it becomes a directory, keeps every entry inside
// LOCALDIR/HOST, counts the per-host cap itself, and writes each file atomically.
import { mkdirSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { DistRunError, ErrorCodes, OptionError } from '../../errors.js';
import { FetchWriter, collectFetch, hostDirectoryProblem, type FetchedEntry } from '../execution/fetch-writer.js';
import { routeTargets } from '../execution/broker-route.js';
import { runTransfer, type TransferOptions } from '../execution/transfer-run.js';
import { addConnectionOptions, addSelectionOptions, addTransferOptions, byteSize } from '../options.js';
import { CopyJson, CopyLines, copyExitCode, copyHostStatus, type CopyReporter } from '../output/copy-report.js';
import { copyRecord, type RunRecord, keepRun } from '../output/run-record.js';
import type { Target } from '../targeting/model.js';
import { writeHostLines } from '../output/host-lines.js';
import type { OutputStreams } from '../output/renderers.js';
import { visibleText } from '../terminal-text.js';
import { resolveTargets, type SelectionOptions } from '../targeting/select.js';

/** Per host, unless --max-bytes says otherwise: a wrong path (/var/log for one file) cannot fill the disk. */
const DEFAULT_MAX_BYTES = 1024 ** 3;
/** The paths must fit the agent's GET frame (64 KiB). */
const MAX_REQUEST_BYTES = 60 * 1024;

interface FetchOptions extends SelectionOptions, TransferOptions {
  recursive?: boolean;
  maxBytes: number;
  dryRun?: boolean;
  quiet?: boolean;
  json?: boolean;
  /** Set by rerun: the run this one repeats. */
  rerunOf?: string;
}

export function registerFetchCommand(program: Command): void {
  const command = addConnectionOptions(
    addSelectionOptions(
      program
        .command('fetch')
        .description('collect files or directories from every selected host into LOCALDIR/HOST/<remote path> (atomic per file)')
        .argument('<paths...>', 'REMOTE... LOCALDIR: absolute paths on the hosts, then the local directory'),
    ),
  )
    .option('-r, --recursive', 'fetch directories (links in them are fetched as links)')
    .option('--max-bytes <size>', 'stop a host after SIZE bytes of file data (K, M, G suffixes; default 1G)', byteSize, DEFAULT_MAX_BYTES)
    .option('--json', 'JSON Lines events on stdout: start, one file event per entry, the end of each host, the summary (docs/json-events.md)');
  addTransferOptions(command, 'fetch', 'print the hosts and where their files would go, and fetch nothing').action(
    async (paths: string[], opts: FetchOptions) => {
      process.exitCode = await fetchFiles(paths, opts);
    },
  );
}

/** `distrun rerun` of a recorded fetch: the same paths, directory and cap, on the hosts rerun chose. */
export function rerunFetch(run: RunRecord, opts: object, targets: Target[]): Promise<number> {
  const { paths, localDir, recursive, maxBytes } = run.fetch!;
  return fetchFiles(
    [...paths, localDir],
    { ...(opts as FetchOptions), recursive, maxBytes, timeout: run.timeout, rerunOf: run.id },
    process,
    targets,
  );
}

async function fetchFiles(paths: readonly string[], opts: FetchOptions, io: OutputStreams = process, chosenTargets?: Target[]): Promise<number> {
  if (paths.length < 2) throw new OptionError('fetch needs at least one remote path and a local directory: distrun fetch REMOTE... LOCALDIR');
  const remote = paths.slice(0, -1);
  const localDir = paths[paths.length - 1]!;
  for (const path of remote) {
    if (!path.startsWith('/')) throw new OptionError(`remote paths must be absolute, got '${path}'`);
    if (path.includes('\0')) throw new OptionError('a remote path cannot contain NUL');
  }
  if (Buffer.byteLength(JSON.stringify(remote)) > MAX_REQUEST_BYTES) throw new OptionError('too many remote paths for one fetch');
  const routed = routeTargets(chosenTargets ?? resolveTargets(opts), opts);
  const { targets } = routed;
  // Host names come from inventories the user may not have written: each becomes a directory.
  for (const target of targets) {
    const problem = hostDirectoryProblem(target.name);
    if (problem) {
      throw new DistRunError(
        ErrorCodes.INVENTORY,
        `host ${JSON.stringify(visibleText(target.name))} cannot be a directory name under ${localDir}: ${problem}; nothing was fetched`,
      );
    }
  }
  if (opts.dryRun) {
    for (const path of remote) io.stdout.write(`${path} → ${localDir}/HOST${path}\n`);
    writeHostLines(targets, io.stdout, false);
    return 0;
  }
  mkdirSync(localDir, { recursive: true });
  if (!statSync(localDir).isDirectory()) throw new OptionError(`${localDir} is not a directory`);
  const reporter: CopyReporter = opts.json ? new CopyJson(io, 'fetch') : new CopyLines(io, opts.quiet === true, 'fetch');
  const startedAt = new Date();
  const fetch = { paths: remote, recursive: opts.recursive === true, maxBytes: opts.maxBytes };
  const { reports, interrupted } = await runTransfer<FetchedEntry>(routed, { fetch, stdin: false }, opts, {
    start: (session) => {
      const name = session.target.name;
      reporter.hostStarted(session.target);
      const writer = new FetchWriter(localDir, name, opts.maxBytes, (entry) => reporter.entry(name, entry));
      collectFetch(session, writer);
      return { entries: writer.results };
    },
    done: (report) => reporter.hostDone(report),
    note: (note) => io.stderr.write(`distrun: ${note}\n`),
  });
  const exitCode = copyExitCode(reports, interrupted);
  reporter.finish(reports, exitCode);
  const record = copyRecord(
    { startedAt, parent: opts.rerunOf, timeout: opts.timeout, exitCode, fetch: { ...fetch, localDir: resolve(localDir) } },
    reports.map((report) => ({ result: report.result, ...copyHostStatus(report) })),
  );
  keepRun(record, io.stderr);
  return exitCode;
}
