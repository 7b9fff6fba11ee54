// `distrun runs`: the recent run records, newest first. (`distrun rerun` is a run: it
// lives in run.ts, as no command module imports another.)
import type { Command } from 'commander';
import { positiveInt } from '../options.js';
import { describeCommand, listRuns } from '../output/run-record.js';
import { table } from '../output/table.js';

export function registerRunHistoryCommand(program: Command): void {
  program
    .command('runs')
    .description('list recent runs (newest first) from $XDG_CACHE_HOME/distrun/runs')
    .option('-n, --limit <n>', 'how many runs to list', positiveInt, 20)
    .action((opts: { limit: number }) => {
      const rows = [['RUN', 'STARTED', 'HOSTS', 'OK', 'NOT OK', 'EXIT', 'FROM', 'COMMAND']];
      const { runs, skipped } = listRuns(opts.limit);
      for (const { reason } of skipped) process.stderr.write(`distrun: skipping: ${reason}\n`);
      for (const run of runs) {
        const ok = run.hosts.filter((h) => h.status === 'ok').length;
        rows.push([
          run.id,
          run.startedAt.replace('T', ' ').slice(0, 19),
          String(run.hosts.length),
          String(ok),
          String(run.hosts.length - ok),
          String(run.exitCode),
          run.parent ?? '-',
          describeCommand(run),
        ]);
      }
      if (rows.length > 1) process.stdout.write(table(rows));
      else if (skipped.length === 0) process.stdout.write('no recorded runs yet\n');
    });
}
