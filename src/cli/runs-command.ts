// `distrun runs` and `distrun rerun`: recent run records, and running a recorded
// command again on just the hosts that failed or could not be reached.
import type { Command } from 'commander';
import { UsageError } from '../errors.js';
import type { Target } from './inventory.js';
import { positiveInt } from './option-values.js';
import { count } from './plural.js';
import { runCommand, type RunOptions } from './run-command.js';
import { resolveChain, type RunChain } from './run-chain.js';
import { listRuns, loadRun, loadRunById, type RunRecord } from './run-record.js';
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

/** What rerun runs: hosts in their latest state along the chain, or why there is nothing to run. */
export type RerunSelection = { targets: Target[]; nothing?: undefined } | { targets?: undefined; nothing: string };

export function rerunSelection(chain: RunChain, which: { failed?: boolean; unreachable?: boolean }): RerunSelection {
  const classes = [...(which.failed ? RERUN_CLASSES.failed : []), ...(which.unreachable ? RERUN_CLASSES.unreachable : [])];
  if (classes.length === 0) throw new UsageError('say which hosts to run again: --failed, --unreachable, or both');
  const latest = chain.runs[0]!;
  const chosen = chain.states.filter(({ host }) => classes.includes(host.status));
  if (chosen.length > 0) {
    return {
      targets: chosen.map(({ host: { name, address, port, status }, runId }) =>
        ({ name, address, port, via: `rerun of ${latest.id} (${status} in ${runId})` })),
    };
  }
  const total = chain.states.length;
  const ok = chain.states.filter(({ host }) => host.status === 'ok').length;
  if (ok === total) return { nothing: `nothing to run again: all ${count(total, 'host')} succeeded` };
  const counts = new Map<string, number>();
  for (const { host } of chain.states) counts.set(host.status, (counts.get(host.status) ?? 0) + 1);
  return { nothing: `nothing to run again: no host is ${classes.join(', ')} (${[...counts].map(([c, n]) => `${n} ${c}`).join(', ')})` };
}

export function registerRunsCommands(program: Command, addConnectionOptions: (c: Command) => Command): void {
  program.command('runs')
    .description('list recent runs (newest first) from $XDG_CACHE_HOME/distrun/runs')
    .option('-n, --limit <n>', 'how many runs to list', positiveInt, 20)
    .action((opts: { limit: number }) => {
      const rows = [['RUN', 'STARTED', 'HOSTS', 'OK', 'NOT OK', 'EXIT', 'FROM', 'COMMAND']];
      const { runs, skipped } = listRuns(opts.limit);
      for (const { reason } of skipped) process.stderr.write(`distrun: skipping: ${reason}\n`);
      for (const run of runs) {
        const ok = run.hosts.filter((h) => h.status === 'ok').length;
        rows.push([run.id, run.startedAt.replace('T', ' ').slice(0, 19), String(run.hosts.length), String(ok),
          String(run.hosts.length - ok), String(run.exitCode), run.parent ?? '-', describeCommand(run)]);
      }
      if (rows.length > 1) process.stdout.write(table(rows));
      else if (skipped.length === 0) process.stdout.write('no recorded runs yet\n');
    });

  addConnectionOptions(program.command('rerun')
    .description('run a recorded command again on the hosts that failed and/or were unreachable (after a rerun: in their latest state along the reruns)')
    .argument('[run]', 'run id or its unique prefix (default: the newest run)'))
    .option('--failed', 'hosts whose command failed or timed out')
    .option('--unreachable', 'hosts where the command never ran (unreachable, refused, not started)')
    .option('-b, --gather', 'gather identical outputs, as for a run')
    .option('--json', 'JSON Lines events on stdout, as for a run (docs/json-events.md)')
    .action(async (id: string | undefined, opts: RunOptions & { failed?: boolean; unreachable?: boolean }) => {
      const run = loadRun(id);
      const chain = resolveChain(run, (parent) => loadRunById(parent));
      const selection = rerunSelection(chain, opts);
      if (selection.nothing !== undefined) {
        process.stderr.write(`distrun: ${selection.nothing} (run ${run.id})\n`);
        process.exitCode = 0;
        return;
      }
      const { targets } = selection;
      const along = chain.runs.length > 1 ? `, each in its latest state over ${chain.runs.length} runs back to ${chain.runs[chain.runs.length - 1]!.id}` : '';
      process.stderr.write(`distrun: running again on ${count(targets.length, 'host')} of ${run.id}${along}: ${describeCommand(run)}\n`);
      process.exitCode = await runCommand(run.command, {
        ...opts, shell: run.shell, stdin: run.stdin, stderr: run.stderr, timeout: run.timeout, script: run.script, prefix: true, rerunOf: run.id,
      }, process, targets);
    });
}
