// `distrun rerun`: a recorded run again, of its command or its copy, on the hosts its
// record chain picks (output/run-chain.ts). main.ts hands it the two ways to run, as no
// command module imports another.
import type { Command } from 'commander';
import { addConnectionOptions } from '../options.js';
import type { OutputStreams } from '../output/renderers.js';
import { describeCommand, loadRun, loadRunById, type RunRecord } from '../output/run-record.js';
import { rerunSelection, resolveChain } from '../output/run-chain.js';
import { count } from '../plural.js';
import type { Target } from '../targeting/model.js';

interface RerunOptions {
  failed?: boolean;
  unreachable?: boolean;
  gather?: boolean;
  json?: boolean;
  [option: string]: unknown;
}

/** How rerun runs a recorded command or a recorded copy again, on the hosts it chose. */
interface Rerunners {
  run(run: RunRecord, opts: RerunOptions, targets: Target[]): Promise<number>;
  copy(run: RunRecord, opts: RerunOptions, targets: Target[]): Promise<number>;
  fetch(run: RunRecord, opts: RerunOptions, targets: Target[]): Promise<number>;
}

export function registerRerunCommand(program: Command, rerunners: Rerunners, io: OutputStreams = process): void {
  addConnectionOptions(
    program
      .command('rerun')
      .description(
        'run a recorded command (or copy, or fetch) again on the hosts that failed and/or were unreachable (after a rerun: in their latest state along the reruns)',
      )
      .argument('[run]', 'run id or its unique prefix (default: the newest run)'),
  )
    .option('--failed', 'hosts whose command failed or timed out')
    .option('--unreachable', 'hosts where the command never ran (unreachable, refused, not started)')
    .option('-b, --gather', 'gather identical outputs, as for a run')
    .option('--json', 'JSON Lines events on stdout, as for a run (docs/json-events.md)')
    .action(async (id: string | undefined, opts: RerunOptions) => {
      const run = loadRun(id);
      const chain = resolveChain(run, (parent) => loadRunById(parent));
      const selection = rerunSelection(chain, opts);
      if (selection.nothing !== undefined) {
        io.stderr.write(`distrun: ${selection.nothing} (run ${run.id})\n`);
        process.exitCode = 0;
        return;
      }
      const { targets } = selection;
      const along =
        chain.runs.length > 1 ? `, each in its latest state over ${chain.runs.length} runs back to ${chain.runs[chain.runs.length - 1]!.id}` : '';
      io.stderr.write(`distrun: running again on ${count(targets.length, 'host')} of ${run.id}${along}: ${describeCommand(run)}\n`);
      const again = run.copy ? rerunners.copy : run.fetch ? rerunners.fetch : rerunners.run;
      process.exitCode = await again(run, opts, targets);
    });
}
