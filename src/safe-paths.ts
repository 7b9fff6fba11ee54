// Paths opened the way openat(2) would, from Node, which has no *at calls: a directory is
// held open by its descriptor, and a name inside it is reached through
// /proc/self/fd/FD/NAME. The kernel follows that magic link to the very directory the
// descriptor holds (whatever has been renamed or swapped since), and NAME, the last
// component, is never followed when it is a symbolic link (O_NOFOLLOW, lstat, rename and
// link act on the link itself). Directories are entered one component at a time the same
// way, so no symbolic link anywhere can redirect a read or a write.
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { posix } from 'node:path';
import { ErrorCodes, type ErrorCode } from './errors.js';
import { componentProblem } from './protocol/file-messages.js';
import { describeSystemError } from './system-errors.js';

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_DIRECTORY, O_NOFOLLOW } = fs.constants;
const DIRECTORY_FLAGS = O_RDONLY | O_DIRECTORY | O_NOFOLLOW;
/** How much of a temporary file is written between two starts of its writeback. */
const WRITEBACK_BYTES = 64 * 1024 * 1024;

export class DirHandle {
  private constructor(
    private readonly fd: number,
    /** The directory's path (real: no symbolic link in it). */
    readonly path: string,
  ) {}

  /**
   * Opens an absolute path that has no symbolic link in it (a realpath), one component at
   * a time without following links: a link swapped in since the path was resolved fails
   * with ELOOP or ENOTDIR instead of being followed.
   */
  static open(realPath: string): DirHandle {
    if (!posix.isAbsolute(realPath)) throw new Error(`not an absolute path: ${realPath}`);
    let dir = new DirHandle(fs.openSync('/', DIRECTORY_FLAGS), '/');
    for (const name of realPath.split('/').filter(Boolean)) {
      try {
        const next = dir.openDir(name);
        dir.close();
        dir = next;
      } catch (err) {
        dir.close();
        throw err;
      }
    }
    return dir;
  }

  /** The path through which the kernel reaches NAME inside this very directory. */
  at(name: string): string {
    const problem = componentProblem(name);
    if (problem) throw new Error(problem);
    return `/proc/self/fd/${this.fd}/${name}`;
  }

  /** The real path of NAME in this directory. */
  pathOf(name: string): string {
    return posix.join(this.path, name);
  }

  /** What NAME is (a link is not followed), or undefined when there is nothing. */
  lstat(name: string): fs.Stats | undefined {
    try {
      return fs.lstatSync(this.at(name));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  openDir(name: string): DirHandle {
    return new DirHandle(fs.openSync(this.at(name), DIRECTORY_FLAGS), this.pathOf(name));
  }

  /** The names in this directory (not `.` and `..`). */
  list(): string[] {
    return fs.readdirSync(`/proc/self/fd/${this.fd}`);
  }

  mkdir(name: string, mode: number): void {
    fs.mkdirSync(this.at(name), { mode });
  }

  /**
   * Makes NAME unless something has that name (whatever it is: the caller opens it, and a
   * link is refused there); true when this call made it. Something else may make it between
   * a look and the mkdir, as `mkdir -p` allows.
   */
  mkdirUnlessThere(name: string, mode: number): boolean {
    try {
      this.mkdir(name, mode);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw err;
    }
  }

  /** Opens NAME; never through a link (O_NOFOLLOW is always added). */
  openFile(name: string, flags: number, mode = 0o600): number {
    return fs.openSync(this.at(name), flags | O_NOFOLLOW, mode);
  }

  /** Renames FROM to TO within this directory; TO, if it exists, is replaced as it is (a link is not followed). */
  rename(from: string, to: string): void {
    fs.renameSync(this.at(from), this.at(to));
  }

  /** A second name for FROM (a link is linked as itself). */
  link(from: string, to: string): void {
    fs.linkSync(this.at(from), this.at(to));
  }

  unlink(name: string): void {
    fs.unlinkSync(this.at(name));
  }

  symlink(target: string, name: string): void {
    fs.symlinkSync(target, this.at(name));
  }

  chmod(mode: number): void {
    fs.fchmodSync(this.fd, mode);
  }

  chown(uid: number, gid: number): void {
    fs.fchownSync(this.fd, uid, gid);
  }

  /** Makes the directory's entries (a rename into it) durable. */
  sync(): void {
    fs.fsyncSync(this.fd);
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}

/** What a file that is not a regular file, a directory or a link is, in words. */
export function kindOf(stat: fs.Stats): string {
  if (stat.isFIFO()) return 'a FIFO';
  if (stat.isCharacterDevice()) return 'a character device';
  if (stat.isBlockDevice()) return 'a block device';
  if (stat.isSocket()) return 'a socket';
  return 'not a regular file';
}

/** Why one entry of a transfer fails (the others go on), with its error code. */
export class EntryFailure extends Error {
  constructor(
    message: string,
    readonly code: ErrorCode = ErrorCodes.FILE,
  ) {
    super(message);
  }
}

/** A system error in words; a link met where none may be says so. */
export function describePathError(err: unknown): string {
  if ((err as NodeJS.ErrnoException).code === 'ELOOP') return 'a symbolic link is in the way (links are not followed here)';
  return describeSystemError(err);
}

/**
 * Directories below a base directory, entered one component at a time without following
 * links (and, with `create`, made where missing), each opened once and kept by its path
 * relative to the base.
 */
export class DirTree {
  private readonly dirs = new Map<string, DirHandle>();

  /** The directory NAMES below BASE. Throws EntryFailure naming the path (a link in the way says so). */
  open(base: DirHandle, names: readonly string[], create?: { mode: number }): DirHandle {
    let dir = base;
    for (let depth = 1; depth <= names.length; depth++) {
      const key = names.slice(0, depth).join('/');
      let next = this.dirs.get(key);
      if (!next) {
        const name = names[depth - 1]!;
        try {
          if (create && !dir.lstat(name)) dir.mkdirUnlessThere(name, create.mode);
          next = dir.openDir(name);
        } catch (err) {
          if (dir.lstat(name)?.isSymbolicLink())
            throw new EntryFailure(`${dir.pathOf(name)} is a symbolic link: links below the destination are not followed`);
          throw new EntryFailure(`${dir.pathOf(name)}: ${describePathError(err)}`);
        }
        this.dirs.set(key, next);
      }
      dir = next;
    }
    return dir;
  }

  /** A directory opened by the caller, kept as PATH. */
  remember(path: string, dir: DirHandle): void {
    const previous = this.dirs.get(path);
    if (previous !== dir) previous?.close();
    this.dirs.set(path, dir);
  }

  close(): void {
    for (const dir of this.dirs.values()) dir.close();
    this.dirs.clear();
  }
}

/** Temporary files are named so, in their target's own directory: recognisable as ours. */
export const TEMP_PREFIX = '.distrun-tmp-';

export function tempName(): string {
  return `${TEMP_PREFIX}${randomBytes(6).toString('hex')}`;
}

/**
 * A file written under a temporary name in its target's directory (created O_EXCL, mode
 * 0600), its bytes counted and hashed: `commit` makes it durable and renames it over the
 * target, so that a reader sees the old file or the new one, never a part; `drop`
 * removes it.
 */
export class TempFile {
  private fd: number;
  private readonly hash = createHash('sha256');
  bytes = 0;
  /** Bytes written since writeback was last started (see write). */
  private unsynced = 0;
  private syncing = false;

  constructor(
    readonly dir: DirHandle,
    readonly name: string = tempName(),
  ) {
    this.fd = dir.openFile(name, O_WRONLY | O_CREAT | O_EXCL, 0o600);
  }

  write(chunk: Buffer): void {
    fs.writeSync(this.fd, chunk);
    this.hash.update(chunk);
    this.bytes += chunk.length;
    this.unsynced += chunk.length;
    // Writeback of a large file starts while it is still arriving (an fdatasync in the
    // background every WRITEBACK_BYTES), so the fsync before the rename waits for the
    // last part only, not for the whole file. (A descriptor closed meanwhile: harmless.)
    if (this.unsynced >= WRITEBACK_BYTES && !this.syncing) {
      this.unsynced = 0;
      this.syncing = true;
      fs.fdatasync(this.fd, () => {
        this.syncing = false;
      });
    }
  }

  /** The SHA-256 of what was written, lower-case hex (asked once: the hash is finished). */
  digest(): string {
    return this.hash.digest('hex');
  }

  /**
   * Lets `prepare` set more on the descriptor (owner, mtime), gives the file MODE — after
   * the owner, whose change clears setuid and setgid — fsyncs and closes it, renames it
   * over TARGET (after `beforeRename`) and fsyncs the directory.
   */
  commit(target: string, mode: number, prepare?: (fd: number) => void, beforeRename?: () => void): void {
    prepare?.(this.fd);
    fs.fchmodSync(this.fd, mode);
    fs.fsyncSync(this.fd);
    fs.closeSync(this.fd);
    this.fd = -1;
    beforeRename?.();
    this.dir.rename(this.name, target);
    this.dir.sync();
  }

  /** Closes and removes the temporary file, whatever state it is in. */
  drop(): void {
    try {
      if (this.fd >= 0) fs.closeSync(this.fd);
    } catch {
      // closed already
    }
    this.fd = -1;
    try {
      this.dir.unlink(this.name);
    } catch {
      // gone already (renamed, or never made)
    }
  }
}
