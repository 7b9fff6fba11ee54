// The latest state of each host along a chain of reruns. A rerun's record names the run
// it came from (`parent`); following those back leads to the run that chose the hosts
// (the root). Each host of the root's selection is in the state of its result in the
// newest run of the chain that included it, so `rerun --failed` after `rerun --failed`
// shrinks as hosts succeed, and `rerun --unreachable` after a `rerun --failed` still
// finds the hosts the first run could not reach.
//
// Pure: records come from the loader it is given. A chain that cannot be followed (a
// parent pruned, damaged or not ours, a cycle, a host the root never had) is an error:
// without every link the state of some host is unknown, and guessing would run the
// command on the wrong set of hosts.
import { DistRunError, FileError, UsageError } from '../../errors.js';
import type { OutcomeClass } from '../execution/outcome.js';
import { count } from '../plural.js';
import type { Target } from '../targeting/model.js';
import type { HostRecord, RunRecord } from './run-record.js';

interface HostState {
  host: HostRecord;
  /** The run whose result this is. */
  runId: string;
}

interface RunChain {
  /** The runs, newest first; the last one is the root, which chose the hosts. */
  runs: RunRecord[];
  /** Every host of the root's selection, in its order, in its latest state. */
  states: HostState[];
}

/** Reads a record by its exact id; throws a DistRunError when it cannot. */
type RecordLoader = (id: string) => RunRecord;

const hostKey = (h: Pick<HostRecord, 'name' | 'address' | 'port'>): string => `${h.name}\0${h.address}\0${h.port}`;

export function resolveChain(latest: RunRecord, load: RecordLoader): RunChain {
  const runs = [latest];
  const seen = new Set([latest.id]);
  for (let run = latest; run.parent !== undefined; ) {
    const parentId = run.parent;
    if (seen.has(parentId)) {
      throw new FileError(
        `run records ${[...seen].join(', ')} name each other as the run they came from (a cycle): they were not written by distrun as they are`,
      );
    }
    let parent: RunRecord;
    try {
      parent = load(parentId);
    } catch (err) {
      if (!(err instanceof DistRunError)) throw err;
      throw new FileError(
        `run ${run.id} ran again the hosts of ${parentId}, whose record cannot be used (${err.message}); ` +
          `without it the state of its hosts is unknown, so rerun will not guess (run the command with the hosts you mean)`,
      );
    }
    if (parent.id !== parentId) throw new FileError(`run record ${parentId} is damaged: it calls itself ${parent.id}`);
    seen.add(parentId);
    runs.push(parent);
    run = parent;
  }
  const root = runs[runs.length - 1]!;
  const latestByHost = new Map<string, HostState>();
  const rootKeys = new Set(root.hosts.map(hostKey));
  // Oldest first, so a newer run's result replaces an older one.
  for (const run of [...runs].reverse()) {
    for (const host of run.hosts) {
      const key = hostKey(host);
      if (!rootKeys.has(key)) {
        throw new FileError(
          `run record ${run.id} is damaged: it ran ${host.name} (${host.address}:${host.port}), which run ${root.id} it came from never had`,
        );
      }
      latestByHost.set(key, { host, runId: run.id });
    }
  }
  return { runs, states: root.hosts.map((h) => latestByHost.get(hostKey(h))!) };
}

/** `--failed`: hosts whose command failed or timed out; `--unreachable`: hosts where it never ran. */
const RERUN_CLASSES: Record<'failed' | 'unreachable', readonly OutcomeClass[]> = {
  failed: ['failed', 'timeout'],
  unreachable: ['unreachable', 'error', 'skipped'],
};

/** What rerun runs: hosts in their latest state along the chain, or why there is nothing to run. */
type RerunSelection = { targets: Target[]; nothing?: undefined } | { targets?: undefined; nothing: string };

export function rerunSelection(chain: RunChain, which: { failed?: boolean; unreachable?: boolean }): RerunSelection {
  const classes = [...(which.failed ? RERUN_CLASSES.failed : []), ...(which.unreachable ? RERUN_CLASSES.unreachable : [])];
  if (classes.length === 0) throw new UsageError('say which hosts to run again: --failed, --unreachable, or both');
  const latest = chain.runs[0]!;
  const chosen = chain.states.filter(({ host }) => classes.includes(host.status));
  if (chosen.length > 0) {
    return {
      targets: chosen.map(({ host: { name, address, port, reach, status }, runId }) => ({
        name,
        address,
        port,
        via: `rerun of ${latest.id} (${status} in ${runId})`,
        ...(reach ? { reach } : {}),
      })),
    };
  }
  const total = chain.states.length;
  const ok = chain.states.filter(({ host }) => host.status === 'ok').length;
  if (ok === total) return { nothing: `nothing to run again: all ${count(total, 'host')} succeeded` };
  const counts = new Map<string, number>();
  for (const { host } of chain.states) counts.set(host.status, (counts.get(host.status) ?? 0) + 1);
  return { nothing: `nothing to run again: no host is ${classes.join(', ')} (${[...counts].map(([c, n]) => `${n} ${c}`).join(', ')})` };
}
