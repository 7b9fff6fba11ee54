// The sending end of a fetch (protocol 5): run by the agent as the run-as user, like a
// command and like the copy's receiver (file-receiver.ts), it reads the paths the client
// asked for and writes the file stream on stdout: ENT, DAT and END per file (END with the
// size and sha256 of what was read), ENT for directories and links, FIL for an entry it
// cannot send. Each path is resolved (realpath) as the user and matched against the
// policy there; below it nothing is followed: directories are entered and files opened
// through their directory's descriptor with O_NOFOLLOW (safe-paths.ts), and a link is
// sent as a link. Only regular files, directories and links are sent: a FIFO or a device
// would block or never end. Data stops at the per-host cap (`maxBytes`).
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { posix } from 'node:path';
import { ErrorCodes } from '../errors.js';
import { FileToken } from '../protocol/constants.js';
import { encodeEntry, encodeResult, encodeSentEnd, type FetchRequest, type FileEntry } from '../protocol/file-messages.js';
import { encodeFrame } from '../protocol/messages.js';
import { DirHandle, EntryFailure, describePathError, kindOf } from '../safe-paths.js';
import { matchesWildcard } from '../wildcard.js';

/** What the agent decided before starting the sender (passed as its one argument, JSON). */
export interface SenderJob {
  request: FetchRequest;
  /** Path patterns the client may read (policy); undefined: anything the user may. */
  allowed?: string[];
}

/** Bytes read from a file at a time (one DAT frame each). */
const CHUNK_BYTES = 256 * 1024;

/** The cap is reached: nothing more is sent. */
class CapReached extends EntryFailure {}

export class FileSender {
  private next = 0;
  private sent = 0;
  private failures = 0;

  /** `send` resolves when the frame may be followed by the next (stdout has room). */
  constructor(
    private readonly job: SenderJob,
    private readonly send: (frame: Buffer) => Promise<void> | void,
  ) {}

  /** Sends every path asked for; the exit status: 0 when every entry was sent, 1 otherwise. */
  async run(): Promise<number> {
    for (const path of this.job.request.paths) {
      if (!(await this.top(path))) break;
    }
    return this.failures > 0 ? 1 : 0;
  }

  /** One path asked for; false once the cap stops the stream. */
  private async top(asked: string): Promise<boolean> {
    let real: string;
    try {
      real = fs.realpathSync.native(asked);
    } catch (err) {
      // Outside the policy's paths, whether a path exists is not told either.
      const denied = this.job.allowed && !this.isAllowed(posix.normalize(asked));
      await this.fail(this.next++, asked, denied ? new EntryFailure('is not a path this client may read', ErrorCodes.DENIED) : err);
      return true;
    }
    if (real === '/') {
      await this.fail(this.next++, asked, new EntryFailure('/ cannot be fetched as a whole; name the directories below it'));
      return true;
    }
    let parent: DirHandle;
    try {
      parent = DirHandle.open(posix.dirname(real));
    } catch (err) {
      await this.fail(this.next++, real, err);
      return true;
    }
    try {
      return await this.entry(parent, posix.basename(real), real.slice(1), true);
    } finally {
      parent.close();
    }
  }

  /** One entry NAME of PARENT, sent as PATH (relative: its real path without the leading `/`). */
  private async entry(parent: DirHandle, name: string, path: string, top: boolean): Promise<boolean> {
    const i = this.next++;
    const real = parent.pathOf(name);
    try {
      this.authorize(real);
      const stat = parent.lstat(name);
      if (!stat) throw new EntryFailure('no such file or directory');
      const mode = stat.mode & 0o7777;
      if (stat.isDirectory()) {
        if (!this.job.request.recursive) throw new EntryFailure(top ? 'is a directory (add -r to fetch it)' : 'is a directory');
        const dir = parent.openDir(name);
        try {
          await this.send(encodeEntry({ i, path, type: 'dir', mode }));
          for (const child of dir.list().sort()) {
            if (!(await this.entry(dir, child, `${path}/${child}`, false))) return false;
          }
        } finally {
          dir.close();
        }
      } else if (stat.isSymbolicLink()) {
        await this.send(encodeEntry({ i, path, type: 'link', mode, target: fs.readlinkSync(parent.at(name)) }));
      } else if (stat.isFile()) {
        await this.file(i, parent, name, path, mode);
      } else {
        throw new EntryFailure(`is ${kindOf(stat)}: only regular files, directories and links are fetched`);
      }
      return true;
    } catch (err) {
      await this.fail(i, real, err);
      return !(err instanceof CapReached);
    }
  }

  private async file(i: number, parent: DirHandle, name: string, path: string, mode: number): Promise<void> {
    // O_NONBLOCK: a FIFO swapped in since the lstat does not block the open (fstat then refuses it).
    const fd = parent.openFile(name, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    try {
      const stat = fs.fstatSync(fd);
      if (!stat.isFile()) throw new EntryFailure(`is ${kindOf(stat)}: only regular files, directories and links are fetched`);
      const { maxBytes } = this.job.request;
      if (this.sent + stat.size > maxBytes) throw this.capReached();
      const entry: FileEntry = { i, path, type: 'file', mode, size: stat.size };
      await this.send(encodeEntry(entry));
      const hash = createHash('sha256');
      const buffer = Buffer.allocUnsafe(CHUNK_BYTES);
      let size = 0;
      // Until EOF, whatever st_size said (files in /proc say 0), but never past the cap.
      for (;;) {
        const n = fs.readSync(fd, buffer, 0, buffer.length, null);
        if (n === 0) break;
        if (this.sent + n > maxBytes) throw this.capReached();
        const chunk = buffer.subarray(0, n);
        hash.update(chunk);
        size += n;
        this.sent += n;
        // The frame copies the bytes: the buffer is reused for the next read.
        await this.send(encodeFrame(FileToken.DATA, chunk));
      }
      await this.send(encodeSentEnd({ i, size, sha256: hash.digest('hex') }));
    } finally {
      fs.closeSync(fd);
    }
  }

  private capReached(): CapReached {
    return new CapReached(`exceeds --max-bytes (${this.job.request.maxBytes} bytes in all); nothing more is sent`, ErrorCodes.LIMIT);
  }

  private isAllowed(path: string): boolean {
    const { allowed } = this.job;
    return !allowed || allowed.some((pattern) => matchesWildcard(pattern, path));
  }

  private authorize(path: string): void {
    if (!this.isAllowed(path)) throw new EntryFailure('is not a path this client may read', ErrorCodes.DENIED);
  }

  private async fail(i: number, path: string, err: unknown): Promise<void> {
    this.failures += 1;
    const code = err instanceof EntryFailure ? err.code : ErrorCodes.FILE;
    const reason = err instanceof EntryFailure ? err.message : describePathError(err);
    await this.send(encodeResult({ i, path, outcome: 'failed', code, reason }));
  }
}
