// `--outdir DIR`: every host's stdout and stderr, byte-exact, in DIR/HOST.out and
// DIR/HOST.err as they arrive, and the exit code distrun counts for it in DIR/HOST.rc.
//
// distrun often runs as root, and DIR may be where others can write. So, before any
// command runs, the way to DIR is checked: every directory on it, and every link
// followed, belongs to root or to us, and no directory is writable by others unless it
// is sticky (like /tmp), so nobody else can redirect the path later. distrun keeps a
// record of the files it writes there (RECORD_FILE); a later run removes the files that
// record lists, so hosts not in the new run leave nothing stale behind, and nothing it
// did not write. Files of an earlier run are removed only when they are ours (regular
// files we own); anything else under one of this run's names is refused. Files are then created exclusively and never
// through a link (O_CREAT|O_EXCL|O_NOFOLLOW): a name planted meanwhile makes that one
// file fail; it is never written through. A file that cannot be written is reported and
// makes distrun exit 255; the other files, and the output on the screen, go on.
import { closeSync, constants, createWriteStream, lstatSync, mkdirSync, openSync, readlinkSync, unlinkSync, writeSync, type Stats } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { FileError } from '../../errors.js';
import { octalMode, readPrivateFile, writeFileWithMode } from '../../private-files.js';
import { describeSystemError } from '../../system-errors.js';
import { dialAddress } from '../targeting/host-label.js';
import { hostExitCode, type HostResult } from '../execution/outcome.js';
import type { Target } from '../targeting/model.js';
import type { OutputStream, RenderedHost, Renderer } from './renderers.js';

const SUFFIXES = ['out', 'err', 'rc'] as const;
/** The names of the files distrun wrote in DIR: `{"v":1,"files":["web1.out",...]}`. */
const RECORD_FILE = '.distrun-outdir.json';
const CREATE_EXCLUSIVE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
/** As the kernel allows (MAXSYMLINKS). */
const MAX_LINKS = 40;

function describeFileError(err: unknown): string {
  if ((err as NodeJS.ErrnoException).code === 'EEXIST') return 'something was put under this name during the run; it is left alone';
  return describeSystemError(err);
}

const myUid = (): number => process.getuid?.() ?? -1;

/** Why someone other than root and us could change what this directory or link holds or points to. */
function pathEntryProblem(stats: Stats): string | undefined {
  if (stats.uid !== 0 && stats.uid !== myUid()) return `is owned by uid ${stats.uid}, who could redirect what distrun writes`;
  if (stats.isDirectory() && (stats.mode & 0o022) !== 0 && (stats.mode & 0o1000) === 0) {
    return `has mode ${octalMode(stats.mode)}: others may write to it and it is not sticky, so they could replace what distrun writes`;
  }
  return undefined;
}

function lstatIfPresent(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * The real path of `dir`, made (0755) where missing, resolved one name at a time so
 * that every directory and link on the way is checked (pathEntryProblem). A FileError
 * names the first one that is not safe.
 */
function trustedOutputDir(dir: string): string {
  const split = (path: string) => path.split('/').filter((name) => name !== '' && name !== '.');
  const pending = split(isAbsolute(dir) ? dir : `${process.cwd()}/${dir}`);
  const refuse = (path: string, problem: string) => new FileError(`--outdir ${dir}: ${path} ${problem}`);
  let current = '/';
  let links = 0;
  try {
    const rootProblem = pathEntryProblem(lstatSync('/'));
    if (rootProblem) throw refuse('/', rootProblem);
    while (pending.length > 0) {
      const name = pending.shift()!;
      if (name === '..') {
        current = join(current, '..');
        continue;
      }
      const path = join(current, name);
      let stats = lstatIfPresent(path);
      if (!stats) {
        // Its parent is checked already: nobody else can swap what is made here.
        mkdirSync(path, { mode: 0o755 });
        stats = lstatSync(path);
      }
      const problem = pathEntryProblem(stats);
      if (problem) throw refuse(path, problem);
      if (stats.isSymbolicLink()) {
        if (++links > MAX_LINKS) throw refuse(path, 'leads through too many symbolic links');
        const target = readlinkSync(path);
        if (isAbsolute(target)) current = '/';
        pending.unshift(...split(target));
        continue;
      }
      if (!stats.isDirectory()) throw refuse(path, 'is not a directory');
      current = path;
    }
  } catch (err) {
    if (err instanceof FileError) throw err;
    throw new FileError(`--outdir ${dir}: ${describeFileError(err)}`);
  }
  return current;
}

function earlierFileProblem(stats: Stats): string | undefined {
  if (stats.isSymbolicLink()) return 'is a symbolic link';
  if (!stats.isFile()) return 'is not a regular file';
  if (stats.uid !== myUid()) return `is owned by uid ${stats.uid}, not by you`;
  return undefined;
}

/**
 * Removes a file of an earlier run, if it is ours. Anything else under a name this run
 * writes is refused; under a name only the record lists, it is left alone with a note.
 */
function removeEarlierFile(path: string, writtenNow: boolean, note: (message: string) => void): void {
  const stats = lstatIfPresent(path);
  if (!stats) return;
  const problem = earlierFileProblem(stats);
  if (problem && writtenNow) throw new FileError(`--outdir: ${path} ${problem}; distrun neither writes through it nor replaces it`);
  if (problem) note(`--outdir: ${path} ${problem}; left alone`);
  else unlinkSync(path);
}

/** A name of a file distrun writes: HOST.out, HOST.err or HOST.rc, in DIR itself. */
const isOutputName = (name: unknown): name is string =>
  typeof name === 'string' && !name.includes('/') && !name.startsWith('.') && SUFFIXES.some((suffix) => name.endsWith(`.${suffix}`));

/** The file names the record in `dir` lists (none without a record); a FileError if it is not ours or damaged. */
function readRecord(dir: string): string[] {
  const path = join(dir, RECORD_FILE);
  if (!lstatIfPresent(path)) return [];
  let record: unknown;
  try {
    record = JSON.parse(readPrivateFile(path).toString('utf8'));
  } catch (err) {
    if (err instanceof FileError) throw new FileError(`--outdir: ${err.message}; distrun does not trust it (remove it to go on)`);
    throw new FileError(`--outdir: ${path} is damaged (remove it to go on)`);
  }
  const files = (record as { v?: unknown; files?: unknown }).files;
  if ((record as { v?: unknown }).v !== 1 || !Array.isArray(files))
    throw new FileError(`--outdir: ${path} is not a record distrun wrote (remove it to go on)`);
  // Only plain output names are acted on, whatever else the file says.
  return files.filter(isOutputName);
}

/** A running host's .out and .err writers (missing where the file could not be opened), and how to end them. */
type HostFiles = Partial<Record<OutputStream, (chunk: Buffer) => void>> & { end: Array<() => void> };

export class OutdirRenderer implements Renderer {
  private readonly pending: Promise<void>[] = [];
  private readonly files = new Map<Target, HostFiles>();
  private readonly failures: string[] = [];

  private constructor(
    private readonly dir: string,
    private readonly onProblem: (message: string) => void,
  ) {}

  /**
   * Checks DIR and removes our files of an earlier run (those of these hosts, and those
   * its record lists), before anything runs (a FileError otherwise). `onProblem` hears
   * of every file that cannot be written, and of a listed one left alone.
   */
  static open(dir: string, targets: readonly Target[], onProblem: (message: string) => void): OutdirRenderer {
    const realDir = trustedOutputDir(dir);
    const byName = new Map<string, Target>();
    for (const target of targets) {
      const other = byName.get(target.name);
      if (other) {
        throw new FileError(
          `--outdir: ${dialAddress(other)} and ${dialAddress(target)} are both named ${target.name}: they would write the same files`,
        );
      }
      byName.set(target.name, target);
    }
    const names = targets.flatMap(({ name }) => SUFFIXES.map((suffix) => `${name}.${suffix}`));
    const writtenNow = new Set(names);
    const earlier = readRecord(realDir).filter((name) => !writtenNow.has(name));
    try {
      for (const name of names) removeEarlierFile(join(realDir, name), true, onProblem);
      for (const name of earlier) removeEarlierFile(join(realDir, name), false, onProblem);
    } catch (err) {
      if (err instanceof FileError) throw err;
      throw new FileError(`--outdir ${dir}: cannot remove a file of an earlier run: ${describeFileError(err)}`);
    }
    try {
      // Before any file is made: a run that is killed midway is still cleared by the next.
      writeFileWithMode(join(realDir, RECORD_FILE), `${JSON.stringify({ v: 1, files: names })}\n`, 0o600);
    } catch (err) {
      throw new FileError(`--outdir ${dir}: cannot write ${RECORD_FILE}, the list of files distrun writes there: ${describeFileError(err)}`);
    }
    return new OutdirRenderer(realDir, onProblem);
  }

  /** What could not be written, one message per file; empty when every file is complete. */
  get problems(): readonly string[] {
    return this.failures;
  }

  hostStarted(host: RenderedHost): void {
    const files: HostFiles = { end: [] };
    this.files.set(host.target, files);
    for (const [event, suffix] of [
      ['stdout', 'out'],
      ['stderr', 'err'],
    ] as const) {
      const path = join(this.dir, `${host.target.name}.${suffix}`);
      let fd: number;
      try {
        fd = openSync(path, CREATE_EXCLUSIVE, 0o666);
      } catch (err) {
        this.fail(path, err);
        continue;
      }
      const file = createWriteStream(path, { fd });
      this.pending.push(new Promise((resolve) => file.once('close', () => resolve())));
      let failed = false;
      let release: (() => void) | undefined;
      const resume = (): void => {
        release?.();
        release = undefined;
      };
      file.on('error', (err) => {
        if (failed) return;
        failed = true;
        this.fail(path, err);
        resume();
      });
      files[event] = (chunk) => {
        if (failed) return;
        // The disk is slower than the agent: stop reading from it until the file drains.
        if (!file.write(chunk) && !release) {
          release = host.hold();
          file.once('drain', resume);
        }
      };
      files.end.push(() => {
        if (!failed) file.end();
      });
    }
  }

  output(host: RenderedHost, stream: OutputStream, chunk: Buffer): void {
    this.files.get(host.target)![stream]?.(chunk);
  }

  hostDone(result: HostResult): void {
    for (const end of this.files.get(result.target)?.end ?? []) end();
    this.files.delete(result.target);
    const path = join(this.dir, `${result.target.name}.rc`);
    try {
      const fd = openSync(path, CREATE_EXCLUSIVE, 0o666);
      try {
        writeSync(fd, `${hostExitCode(result.outcome)}\n`);
      } finally {
        closeSync(fd);
      }
    } catch (err) {
      this.fail(path, err);
    }
  }

  finish(): void {}

  /** Resolves when every file is closed, written or failed; never rejects. */
  async close(): Promise<void> {
    await Promise.all(this.pending);
  }

  private fail(path: string, err: unknown): void {
    const message = `--outdir: cannot write ${path}: ${describeFileError(err)}`;
    this.failures.push(message);
    this.onProblem(message);
  }
}
