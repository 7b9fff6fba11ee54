// `distrun runs` and `distrun rerun`: recent run records, and running a recorded
// command again on just the hosts that failed or could not be reached.
import type { Command } from 'commander';
import { UsageError } from '../errors.js';
import type { Target } from './inventory.js';
import { positiveInt } from './option-values.js';
import { count } from './plural.js';
import { runCommand, type RunOptions } from './run-command.js';
import { listRuns, loadRun, type HostRecord, type RunRecord } from './run-record.js';
import type { OutcomeClass } from './summary.js';

const quote = (arg: string) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`);

export function describeCommand(run: RunRecord): string {
  const words = run.shell ? run.command.join(' ') : run.command.map(quote).join(' ');
  return run.script ? `--script ${quote(run.script)}${words ? ` ${words}` : ''}` : words;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}

/** `--failed`: hosts whose command failed or timed out; `--unreachable`: hosts where it never ran. */
export const RERUN_CLASSES: Record<'failed' | 'unreachable', readonly OutcomeClass[]> = {
  failed: ['failed', 'timeout'],
  unreachable: ['unreachable', 'error', 'skipped'],
};

export function rerunTargets(run: RunRecord, which: { failed?: boolean; unreachable?: boolean }): Target[] {
  const classes = [...(which.failed ? RERUN_CLASSES.failed : []), ...(which.unreachable ? RERUN_CLASSES.unreachable : [])];
  if (classes.length === 0) throw new UsageError('say which hosts to run again: --failed, --unreachable, or both');
  const hosts = run.hosts.filter((h: HostRecord) => classes.includes(h.status));
  if (hosts.length === 0) throw new UsageError(`run ${run.id} has no host that is ${classes.join(', ')}`);
  return hosts.map(({ name, address, port }) => ({ name, address, port, via: `rerun of ${run.id} (${classes.join(', ')})` }));
}

export function registerRunsCommands(program: Command, addConnectionOptions: (c: Command) => Command): void {
  program.command('runs')
    .description('list recent runs (newest first) from $XDG_CACHE_HOME/distrun/runs')
    .option('-n, --limit <n>', 'how many runs to list', positiveInt, 20)
    .action((opts: { limit: number }) => {
      const rows = [['RUN', 'STARTED', 'HOSTS', 'OK', 'NOT OK', 'EXIT', 'COMMAND']];
      const { runs, skipped } = listRuns(opts.limit);
      for (const { reason } of skipped) process.stderr.write(`distrun: skipping: ${reason}\n`);
      for (const run of runs) {
        const ok = run.hosts.filter((h) => h.status === 'ok').length;
        rows.push([run.id, run.startedAt.replace('T', ' ').slice(0, 19), String(run.hosts.length), String(ok),
          String(run.hosts.length - ok), String(run.exitCode), describeCommand(run)]);
      }
      if (rows.length > 1) process.stdout.write(table(rows));
      else if (skipped.length === 0) process.stdout.write('no recorded runs yet\n');
    });

  addConnectionOptions(program.command('rerun')
    .description('run a recorded command again on the hosts that failed and/or were unreachable')
    .argument('[run]', 'run id or its unique prefix (default: the newest run)'))
    .option('--failed', 'hosts whose command failed or timed out')
    .option('--unreachable', 'hosts where the command never ran (unreachable, refused, not started)')
    .option('-b, --gather', 'gather identical outputs, as for a run')
    .option('--json', 'JSON Lines events on stdout, as for a run (docs/json-events.md)')
    .action(async (id: string | undefined, opts: RunOptions & { failed?: boolean; unreachable?: boolean }) => {
      const run = loadRun(id);
      const targets = rerunTargets(run, opts);
      process.stderr.write(`distrun: running again on ${count(targets.length, 'host')} of ${run.id}: ${describeCommand(run)}\n`);
      process.exitCode = await runCommand(run.command, {
        ...opts, shell: run.shell, stdin: run.stdin, stderr: run.stderr, timeout: run.timeout, script: run.script, prefix: true,
      }, process, targets);
    });
}
