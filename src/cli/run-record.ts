// The record of every run, under $XDG_CACHE_HOME/distrun/runs (default ~/.cache):
// which hosts, how each ended, digests of their output, timings. `distrun runs` lists
// them and `distrun rerun` takes its hosts and command from one.
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { UsageError } from '../errors.js';
import { hostExitCode } from './exit-codes.js';
import type { HostResult, HostSession } from './host-session.js';
import type { Target } from './inventory.js';
import type { Renderer } from './output.js';
import { classify, type OutcomeClass } from './summary.js';

/** Records kept; older ones are removed when a new run is saved. */
export const KEEP_RUNS = 100;

export interface HostRecord extends Target {
  status: OutcomeClass;
  exitCode: number;
  reason: string | null;
  durationMs: number;
  bytesOut: number;
  bytesErr: number;
  stdoutSha256: string;
  stderrSha256: string;
}

export interface RunRecord {
  id: string;
  startedAt: string;
  endedAt: string;
  /** The command as typed (before --shell joins it); with --script, the script's arguments. */
  command: string[];
  /** The --script file, if the run sent one. */
  script?: string;
  shell: boolean;
  stdin: boolean;
  stderr: boolean;
  timeout: number | undefined;
  exitCode: number;
  hosts: HostRecord[];
}

export function runsDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'distrun', 'runs');
}

function newRunId(now: Date): string {
  // Sorts by time as text (to the millisecond); the random tail keeps simultaneous runs apart.
  return `${now.toISOString().replace(/[-:.]/g, '')}-${randomBytes(2).toString('hex')}`;
}

/** Collects what a run record needs from the sessions' events. */
export class RecordRenderer implements Renderer {
  private readonly startedAt = new Date();
  private readonly digests = new Map<string, { out: Hash; err: Hash; bytesOut: number; bytesErr: number }>();

  attach(session: HostSession): void {
    const entry = { out: createHash('sha256'), err: createHash('sha256'), bytesOut: 0, bytesErr: 0 };
    this.digests.set(keyOf(session.target), entry);
    session.on('stdout', (chunk) => {
      entry.out.update(chunk);
      entry.bytesOut += chunk.length;
    });
    session.on('stderr', (chunk) => {
      entry.err.update(chunk);
      entry.bytesErr += chunk.length;
    });
  }

  hostDone(): void {}

  finish(): void {}

  record(run: Pick<RunRecord, 'command' | 'script' | 'shell' | 'stdin' | 'stderr' | 'timeout' | 'exitCode'>, results: readonly HostResult[]): RunRecord {
    const hosts = results.map(({ target, outcome, durationMs }): HostRecord => {
      const digest = this.digests.get(keyOf(target));
      const empty = createHash('sha256').digest('hex');
      return {
        name: target.name, address: target.address, port: target.port,
        status: classify(outcome),
        exitCode: hostExitCode(outcome),
        reason: outcome.kind === 'error' ? outcome.message : null,
        durationMs,
        bytesOut: digest?.bytesOut ?? 0,
        bytesErr: digest?.bytesErr ?? 0,
        stdoutSha256: digest?.out.digest('hex') ?? empty,
        stderrSha256: digest?.err.digest('hex') ?? empty,
      };
    });
    return { id: newRunId(this.startedAt), startedAt: this.startedAt.toISOString(), endedAt: new Date().toISOString(), ...run, hosts };
  }
}

function keyOf(target: Target): string {
  return `${target.name}:${target.port}`;
}

/** Writes the record (atomically) and prunes old ones; returns its path. */
export function saveRun(record: RunRecord, dir = runsDir()): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, `${record.id}.json`);
  const temp = `${file}.tmp`;
  writeFileSync(temp, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
  renameSync(temp, file);
  const all = runIds(dir);
  for (const old of all.slice(0, Math.max(0, all.length - KEEP_RUNS))) rmSync(join(dir, `${old}.json`), { force: true });
  return file;
}

function runIds(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => /^\d{8}T\d{9}Z-[0-9a-f]{4}\.json$/.test(f)).map((f) => f.slice(0, -5)).sort();
}

/** Recent runs, newest first. */
export function listRuns(limit: number, dir = runsDir()): RunRecord[] {
  return runIds(dir).reverse().slice(0, limit).map((id) => loadRun(id, dir));
}

/** A run by id (or unique id prefix); the newest when `id` is undefined. */
export function loadRun(id: string | undefined, dir = runsDir()): RunRecord {
  const ids = runIds(dir);
  const matches = id === undefined ? ids.slice(-1) : ids.filter((candidate) => candidate.startsWith(id));
  if (matches.length === 0) throw new UsageError(id ? `no recorded run '${id}' in ${dir} (see 'distrun runs')` : `no recorded run in ${dir} yet`);
  if (matches.length > 1) throw new UsageError(`'${id}' matches ${matches.length} runs; give more of the id`);
  try {
    return JSON.parse(readFileSync(join(dir, `${matches[0]}.json`), 'utf8')) as RunRecord;
  } catch (err) {
    throw new UsageError(`cannot read run ${matches[0]}: ${(err as Error).message}`);
  }
}
