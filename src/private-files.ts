// Files only their owner may read (keys, TLS session tickets): created 0600 in 0700
// directories whatever the umask, and replaced atomically so a reader never sees half.
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  constants,
  existsSync,
  fchmodSync,
  fstatSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
  type Stats,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { FileError } from './errors.js';
import { describeSystemError } from './system-errors.js';

/** Creates `dir` and any missing parents with mode 0700 (whatever the umask). */
export function makePrivateDir(dir: string): void {
  const missing: string[] = [];
  for (let d = resolve(dir); !existsSync(d); d = dirname(d)) missing.unshift(d);
  for (const d of missing) {
    try {
      mkdirSync(d);
    } catch (err) {
      // Another process (a parallel `distrun certs agent`) made it meanwhile: it is made private the same way.
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || !statSync(d).isDirectory()) throw err;
    }
    chmodSync(d, 0o700);
  }
}

/**
 * Makes `dir` private (0700), creating it and missing parents, narrowing it if it is ours.
 * Returns false for a shared directory (sticky, like /tmp, or someone else's), which is
 * left as it is: secrets do not belong there.
 */
export function ensurePrivateDir(dir: string): boolean {
  makePrivateDir(dir);
  const { mode, uid } = statSync(dir);
  // Someone else's directory is not ours to use, however narrow its mode.
  if (uid !== process.getuid?.()) return false;
  if ((mode & 0o077) === 0) return true;
  if ((mode & 0o1000) !== 0) return false;
  chmodSync(dir, 0o700);
  return true;
}

/** `0755`, `1777`: a mode as chmod takes it. */
export function octalMode(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}

/** Why a file or directory with these stats is not private to us (owner, then mode), or undefined. */
export function privacyProblem(stats: Stats): string | undefined {
  const me = process.getuid?.();
  if (stats.uid !== me) return `is owned by uid ${stats.uid}, not by you (uid ${me})`;
  if ((stats.mode & 0o077) !== 0) return `has mode ${octalMode(stats.mode)}: others may read or write it`;
  return undefined;
}

/** Whether `dir` exists, is ours, and only we may read or write it. */
export function isPrivateDir(dir: string): boolean {
  try {
    const stats = statSync(dir);
    return stats.isDirectory() && privacyProblem(stats) === undefined;
  } catch {
    return false;
  }
}

/**
 * The bytes of `file` if it is a regular file of ours that only we may read or write;
 * otherwise a FileError that says why. The file is opened without following a link
 * (and without blocking on a FIFO) and checked on the open descriptor, so what is
 * checked is what is read.
 */
export function readPrivateFile(file: string): Buffer {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new FileError(code === 'ELOOP' ? `${file} is a symbolic link` : `cannot read ${file}: ${describeSystemError(err)}`);
  }
  try {
    const stats = fstatSync(fd);
    const problem = stats.isFile() ? privacyProblem(stats) : 'is not a regular file';
    if (problem) throw new FileError(`${file} ${problem}`);
    return readFileSync(fd);
  } finally {
    closeSync(fd);
  }
}

// Pieces are gathered up to about a megabyte a write: few syscalls, and never the whole file in memory.
const WRITE_PIECE_BYTES = 1 << 20;

function writeInPieces(fd: number, pieces: Iterable<string | Uint8Array>): void {
  let gathered: Uint8Array[] = [];
  let length = 0;
  const flush = (): void => {
    writeSync(fd, Buffer.concat(gathered, length));
    gathered = [];
    length = 0;
  };
  for (const piece of pieces) {
    const bytes = typeof piece === 'string' ? Buffer.from(piece) : piece;
    gathered.push(bytes);
    length += bytes.length;
    if (length >= WRITE_PIECE_BYTES) flush();
  }
  if (length > 0) flush();
}

/**
 * Writes a file atomically with an exact mode: a new temp file (never an existing one,
 * whatever its permissions) is written, chmodded against the umask, then renamed over
 * the target, which is replaced whole, mode included.
 */
export function writeFileWithMode(
  file: string,
  content: string | Iterable<string | Uint8Array>,
  mode: number,
  options: { durable?: boolean } = {},
): void {
  const temp = join(dirname(file), `.${basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(temp, 'wx', mode);
  try {
    if (typeof content === 'string') writeSync(fd, content);
    else writeInPieces(fd, content);
    fchmodSync(fd, mode);
    // Caches skip the flush to disk: losing one in a crash costs nothing but time.
    if (options.durable !== false) fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(temp, { force: true });
    throw err;
  }
  closeSync(fd);
  renameSync(temp, file);
}
