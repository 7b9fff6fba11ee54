// The record of every run, under $XDG_CACHE_HOME/distrun/runs (default ~/.cache):
// which hosts, how each ended, digests of their output, timings. `distrun runs` lists
// them and `distrun rerun` takes its hosts and command from one.
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '../errors.js';
import { distrunCacheDir } from './cache-dir.js';
import { hostExitCode } from './exit-codes.js';
import type { HostResult, HostSession } from './host-session.js';
import type { Target } from './inventory.js';
import type { Renderer } from './output.js';
import { classify, type OutcomeClass } from './summary.js';

/** Records kept; older ones are removed when a new run is saved. */
export const KEEP_RUNS = 100;

/**
 * Outputs are digested up to this size per stream. SHA-256 costs about 0.6 s of CPU
 * per GiB on the client, which would halve the speed of a large stream; above the
 * limit the record keeps the size only.
 */
export const DIGEST_LIMIT_BYTES = 64 * 1024 * 1024;

/** SHA-256 of a stream while it stays within DIGEST_LIMIT_BYTES; counts its bytes either way. */
class OutputDigest {
  private hash: Hash | undefined = createHash('sha256');
  bytes = 0;

  update(chunk: Buffer): void {
    this.bytes += chunk.length;
    if (this.bytes > DIGEST_LIMIT_BYTES) this.hash = undefined;
    this.hash?.update(chunk);
  }

  hex(): string | null {
    return this.hash?.digest('hex') ?? null;
  }
}

export interface HostRecord extends Target {
  status: OutcomeClass;
  exitCode: number;
  reason: string | null;
  durationMs: number;
  bytesOut: number;
  bytesErr: number;
  /** null when the output was larger than DIGEST_LIMIT_BYTES. */
  stdoutSha256: string | null;
  stderrSha256: string | null;
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
  return join(distrunCacheDir(env), 'runs');
}

function newRunId(now: Date): string {
  // Sorts by time as text (to the millisecond); the random tail keeps simultaneous runs apart.
  return `${now.toISOString().replace(/[-:.]/g, '')}-${randomBytes(2).toString('hex')}`;
}

/** Collects what a run record needs from the sessions' events. */
export class RecordRenderer implements Renderer {
  private readonly startedAt = new Date();
  private readonly digests = new Map<string, { out: OutputDigest; err: OutputDigest }>();

  attach(session: HostSession): void {
    const entry = { out: new OutputDigest(), err: new OutputDigest() };
    this.digests.set(keyOf(session.target), entry);
    session.on('stdout', (chunk) => entry.out.update(chunk));
    session.on('stderr', (chunk) => entry.err.update(chunk));
  }

  hostDone(): void {}

  finish(): void {}

  record(run: Pick<RunRecord, 'command' | 'script' | 'shell' | 'stdin' | 'stderr' | 'timeout' | 'exitCode'>, results: readonly HostResult[]): RunRecord {
    const hosts = results.map(({ target, outcome, durationMs }): HostRecord => {
      const digest = this.digests.get(keyOf(target)) ?? { out: new OutputDigest(), err: new OutputDigest() };
      return {
        name: target.name, address: target.address, port: target.port,
        status: classify(outcome),
        exitCode: hostExitCode(outcome),
        reason: outcome.kind === 'error' ? outcome.message : null,
        durationMs,
        bytesOut: digest.out.bytes,
        bytesErr: digest.err.bytes,
        stdoutSha256: digest.out.hex(),
        stderrSha256: digest.err.hex(),
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
