// Paths opened the way openat(2) would, from Node, which has no *at calls: a directory is
// held open by its descriptor, and a name inside it is reached through
// /proc/self/fd/FD/NAME. The kernel follows that magic link to the very directory the
// descriptor holds (whatever has been renamed or swapped since), and NAME, the last
// component, is never followed when it is a symbolic link (O_NOFOLLOW, lstat, rename and
// link act on the link itself). Directories are entered one component at a time the same
// way, so no symbolic link anywhere can redirect a read or a write.
import * as fs from 'node:fs';
import { posix } from 'node:path';
import { componentProblem } from '../protocol/file-messages.js';

const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW } = fs.constants;
const DIRECTORY_FLAGS = O_RDONLY | O_DIRECTORY | O_NOFOLLOW;

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

  mkdir(name: string, mode: number): void {
    fs.mkdirSync(this.at(name), { mode });
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
