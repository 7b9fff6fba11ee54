// The record of every run, under $XDG_CACHE_HOME/distrun/runs (default ~/.cache):
// which hosts, how each ended, digests of their output, timings. `distrun runs` lists
// them and `distrun rerun` takes its hosts and command from one.
//
// A record is a command and the hosts to run it on: `rerun` executes it. So records are
// kept like the TLS tickets: a 0700 directory of ours, 0600 files of ours; a directory or
// record someone else could have written is never read (docs/security.md).
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { FileError, UsageError } from '../../errors.js';
import { ensurePrivateDir, privacyProblem, readPrivateFile, writeFileWithMode } from '../../private-files.js';
import { describeSystemError } from '../../system-errors.js';
import { distrunCacheDir } from '../cache-dir.js';
import { classify, failureReason, hostExitCode, type HostResult, type OutcomeClass } from '../execution/outcome.js';
import type { Target } from '../targeting/model.js';
import type { OutputStream, RenderedHost, Renderer } from './renderers.js';

/**
 * Version of the record format. 2 added `version` and `parent` (the run a rerun came
 * from); a record without `version` is a version 1 record, read as one without a parent.
 * 3 added `copy` and `fetch` (a `distrun copy` or `fetch`, whose `command` is empty): an
 * older distrun refuses such a record instead of running its empty command. 4 added a
 * host's `reach` (how it was reached: through a broker, a rerun goes the same way), which
 * an older distrun would ignore and dial directly.
 */
const RUN_RECORD_VERSION = 4;

/** Records kept; older ones are removed when a new run is saved. */
const KEEP_RUNS = 100;

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
  /** RUN_RECORD_VERSION when written; undefined in a version 1 record. */
  version?: number;
  id: string;
  /** A rerun: the id of the run it ran again (run-chain.ts follows these back). */
  parent?: string;
  startedAt: string;
  endedAt: string;
  /** The command as typed (before --shell joins it); with --script, the script's arguments. */
  command: string[];
  /** The --script file, if the run sent one. */
  script?: string;
  /** A copy instead of a command: the sources (absolute local paths) and how they went. */
  copy?: CopiedFiles;
  /** A fetch instead of a command: the remote paths and where they went. */
  fetch?: FetchedFiles;
  shell: boolean;
  stdin: boolean;
  stderr: boolean;
  timeout: number | undefined;
  exitCode: number;
  hosts: HostRecord[];
}

interface CopiedFiles {
  sources: string[];
  dest: string;
  recursive: boolean;
  preserve: boolean;
  backup: boolean;
  owner?: string;
}

interface FetchedFiles {
  paths: string[];
  /** Absolute. */
  localDir: string;
  recursive: boolean;
  maxBytes: number;
}

/** The record of a copy or a fetch: per host its class (changed and unchanged hosts are ok), exit code and reason. */
export function copyRecord(
  run: Pick<RunRecord, 'parent' | 'timeout' | 'exitCode'> & ({ copy: CopiedFiles } | { fetch: FetchedFiles }) & { startedAt: Date },
  hosts: readonly { result: HostResult; status: OutcomeClass; exitCode: number; reason: string | undefined }[],
): RunRecord {
  const { startedAt, ...rest } = run;
  return {
    version: RUN_RECORD_VERSION,
    id: newRunId(startedAt),
    startedAt: startedAt.toISOString(),
    endedAt: new Date().toISOString(),
    command: [],
    shell: false,
    stdin: false,
    stderr: true,
    ...rest,
    hosts: hosts.map(({ result: { target, durationMs }, status, exitCode, reason }) => ({
      ...recordedTarget(target),
      status,
      exitCode,
      reason: reason ?? null,
      durationMs,
      bytesOut: 0,
      bytesErr: 0,
      stdoutSha256: null,
      stderrSha256: null,
    })),
  };
}

function runsDir(env: NodeJS.ProcessEnv = process.env): string {
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

  hostStarted({ target }: RenderedHost): void {
    this.digests.set(keyOf(target), { out: new OutputDigest(), err: new OutputDigest() });
  }

  output({ target }: RenderedHost, stream: OutputStream, chunk: Buffer): void {
    const entry = this.digests.get(keyOf(target))!;
    (stream === 'stdout' ? entry.out : entry.err).update(chunk);
  }

  hostDone(): void {}

  finish(): void {}

  record(
    run: Pick<RunRecord, 'parent' | 'command' | 'script' | 'shell' | 'stdin' | 'stderr' | 'timeout' | 'exitCode'>,
    results: readonly HostResult[],
  ): RunRecord {
    const hosts = results.map(({ target, outcome, durationMs }): HostRecord => {
      const digest = this.digests.get(keyOf(target)) ?? { out: new OutputDigest(), err: new OutputDigest() };
      return {
        ...recordedTarget(target),
        status: classify(outcome),
        exitCode: hostExitCode(outcome),
        reason: failureReason(outcome) ?? null,
        durationMs,
        bytesOut: digest.out.bytes,
        bytesErr: digest.err.bytes,
        stdoutSha256: digest.out.hex(),
        stderrSha256: digest.err.hex(),
      };
    });
    return {
      version: RUN_RECORD_VERSION,
      id: newRunId(this.startedAt),
      startedAt: this.startedAt.toISOString(),
      endedAt: new Date().toISOString(),
      ...run,
      hosts,
    };
  }
}

/** What a record keeps of a host: where it was, and how it was reached (a rerun reaches it the same way). */
function recordedTarget({ name, address, port, reach }: Target): Target {
  return { name, address, port, ...(reach ? { reach } : {}) };
}

function isReach(value: unknown): boolean {
  const r = value as Record<string, unknown> | null;
  return (
    typeof r === 'object' &&
    r !== null &&
    (r.through === 'direct' || r.through === 'broker') &&
    isString(r.by) &&
    (r.urls === undefined || (Array.isArray(r.urls) && r.urls.every(isString)))
  );
}

function keyOf(target: Target): string {
  return `${target.name}:${target.port}`;
}

/** Writes the record (atomically, 0600) and prunes old ones; returns its path. */
export function saveRun(record: RunRecord, dir = runsDir()): string {
  if (!ensurePrivateDir(dir)) {
    throw new FileError(`${dir} ${privacyProblem(statSync(dir)) ?? 'is shared'}; run records need a directory of their own`);
  }
  const file = join(dir, `${record.id}.json`);
  writeFileWithMode(file, `${JSON.stringify(record, null, 2)}\n`, 0o600, { durable: false });
  const all = runIds(dir);
  for (const old of all.slice(0, Math.max(0, all.length - KEEP_RUNS))) rmSync(join(dir, `${old}.json`), { force: true });
  return file;
}

/** Saves the record; a record that cannot be saved costs only a warning on `stderr` (the run itself happened). */
export function keepRun(record: RunRecord, stderr: NodeJS.WritableStream): void {
  try {
    saveRun(record);
  } catch (err) {
    stderr.write(`distrun: warning: could not save the run record in ${runsDir()}: ${(err as Error).message}\n`);
  }
}

/**
 * The ids of the records in `dir`, oldest first; none when it does not exist yet. A
 * directory that is not ours alone is refused as a whole: any record in it may be planted.
 */
function runIds(dir: string): string[] {
  let names: string[];
  try {
    const stats = statSync(dir);
    const problem = stats.isDirectory() ? privacyProblem(stats) : 'is not a directory';
    if (problem) throw new FileError(`not using the run records in ${dir}: it ${problem}, so they may not be yours`);
    names = readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    if (err instanceof FileError) throw err;
    throw new FileError(`cannot read the run records in ${dir} (${describeSystemError(err)})`);
  }
  return names
    .filter((f) => /^\d{8}T\d{9}Z-[0-9a-f]{4}\.json$/.test(f))
    .map((f) => f.slice(0, -5))
    .sort();
}

/** A record that could not be used, and why. */
interface SkippedRun {
  id: string;
  reason: string;
}

/** Recent runs, newest first, and the records among them that are not ours or are damaged. */
export function listRuns(limit: number, dir = runsDir()): { runs: RunRecord[]; skipped: SkippedRun[] } {
  const runs: RunRecord[] = [];
  const skipped: SkippedRun[] = [];
  for (const id of runIds(dir).reverse().slice(0, limit)) {
    try {
      runs.push(readRun(dir, id));
    } catch (err) {
      if (!(err instanceof FileError)) throw err;
      skipped.push({ id, reason: err.message });
    }
  }
  return { runs, skipped };
}

/**
 * A run by id (or unique id prefix); the newest when `id` is undefined. A record that
 * is not ours is an error, never a reason to fall back on another one.
 */
export function loadRun(id: string | undefined, dir = runsDir()): RunRecord {
  const ids = runIds(dir);
  const matches = id === undefined ? ids.slice(-1) : ids.filter((candidate) => candidate.startsWith(id));
  if (matches.length === 0) throw new UsageError(id ? `no recorded run '${id}' in ${dir} (see 'distrun runs')` : `no recorded run in ${dir} yet`);
  if (matches.length > 1) throw new UsageError(`'${id}' matches ${matches.length} runs; give more of the id`);
  return readRun(dir, matches[0]!);
}

/** A run by its exact id (a rerun's parent); a record that is gone or not ours is a FileError. */
export function loadRunById(id: string, dir = runsDir()): RunRecord {
  if (!runIds(dir).includes(id)) throw new FileError(`there is no record ${id} in ${dir} any more (distrun keeps the last ${KEEP_RUNS} runs)`);
  return readRun(dir, id);
}

/** One record: a private file of ours (readPrivateFile), in the shape saveRun writes. */
function readRun(dir: string, id: string): RunRecord {
  const file = join(dir, `${id}.json`);
  let record: unknown;
  try {
    record = JSON.parse(readPrivateFile(file).toString('utf8'));
  } catch (err) {
    if (err instanceof FileError) throw new FileError(`run record ${id} cannot be trusted: ${err.message}`);
    throw new FileError(`run record ${id} is damaged: ${(err as Error).message}`);
  }
  const version = (record as Partial<RunRecord> | null)?.version;
  if (typeof version === 'number' && version > RUN_RECORD_VERSION) {
    throw new FileError(`run record ${id} was written by a newer distrun (record version ${version}; this one reads up to ${RUN_RECORD_VERSION})`);
  }
  if (!isRunRecord(record) || record.id !== id) throw new FileError(`run record ${id} is damaged: it is not a record distrun wrote`);
  return record;
}

const isString = (v: unknown): v is string => typeof v === 'string';

/** Enough of the shape for `runs` and `rerun` to use it as it is. */
function isRunRecord(value: unknown): value is RunRecord {
  const r = value as Partial<RunRecord> | null;
  return (
    typeof r === 'object' &&
    r !== null &&
    (r.version === undefined || Number.isInteger(r.version)) &&
    (r.parent === undefined || isString(r.parent)) &&
    isString(r.id) &&
    isString(r.startedAt) &&
    Array.isArray(r.command) &&
    r.command.every(isString) &&
    (r.script === undefined || isString(r.script)) &&
    (r.copy === undefined || (isCopiedFiles(r.copy) && r.command.length === 0)) &&
    (r.fetch === undefined || (isFetchedFiles(r.fetch) && r.command.length === 0 && r.copy === undefined)) &&
    typeof r.shell === 'boolean' &&
    typeof r.stdin === 'boolean' &&
    typeof r.stderr === 'boolean' &&
    (r.timeout === undefined || typeof r.timeout === 'number') &&
    typeof r.exitCode === 'number' &&
    Array.isArray(r.hosts) &&
    r.hosts.every(
      (h: Partial<HostRecord> | null) =>
        typeof h === 'object' &&
        h !== null &&
        isString(h.name) &&
        isString(h.address) &&
        Number.isInteger(h.port) &&
        isString(h.status) &&
        (h.reach === undefined || isReach(h.reach)),
    )
  );
}

function isCopiedFiles(value: unknown): value is CopiedFiles {
  const c = value as Partial<CopiedFiles> | null;
  return (
    typeof c === 'object' &&
    c !== null &&
    Array.isArray(c.sources) &&
    c.sources.length > 0 &&
    c.sources.every(isString) &&
    isString(c.dest) &&
    typeof c.recursive === 'boolean' &&
    typeof c.preserve === 'boolean' &&
    typeof c.backup === 'boolean' &&
    (c.owner === undefined || isString(c.owner))
  );
}

function isFetchedFiles(value: unknown): value is FetchedFiles {
  const f = value as Partial<FetchedFiles> | null;
  return (
    typeof f === 'object' &&
    f !== null &&
    Array.isArray(f.paths) &&
    f.paths.length > 0 &&
    f.paths.every(isString) &&
    isString(f.localDir) &&
    typeof f.recursive === 'boolean' &&
    Number.isSafeInteger(f.maxBytes)
  );
}

/** The command as the user would type it again (for `distrun runs` and rerun's note). */
const quote = (arg: string) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`);

export function describeCommand(run: RunRecord): string {
  if (run.fetch) {
    const { paths, localDir, recursive, maxBytes } = run.fetch;
    return ['fetch', recursive && '-r', `--max-bytes ${maxBytes}`, ...paths.map(quote), quote(localDir)].filter(Boolean).join(' ');
  }
  if (run.copy) {
    const { sources, dest, recursive, preserve, backup, owner } = run.copy;
    const flags = [recursive && '-r', preserve && '-p', backup && '--backup', owner !== undefined && `--owner ${quote(owner)}`]
      .filter(Boolean)
      .join(' ');
    return ['copy', flags, ...sources.map(quote), quote(dest)].filter(Boolean).join(' ');
  }
  const words = run.shell ? run.command.join(' ') : run.command.map(quote).join(' ');
  return run.script ? `--script ${quote(run.script)}${words ? ` ${words}` : ''}` : words;
}
