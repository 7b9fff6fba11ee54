// The receiving end of a copy (protocol 5): run by the agent as the run-as user, like a
// command (setpriv, clean environment, its own process group and time limit), it reads
// the file stream from stdin and answers on stdout. Like OpenSSH's sftp-server, what a
// client sends about files is parsed by a process with no more rights than the user it
// writes as. Every write is atomic: a temporary file (0600, O_EXCL) in the target's own
// directory, fsynced, given its mode, then renamed over the target. No symbolic link is
// followed below the destination's real path (safe-paths.ts).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { posix } from 'node:path';
import { ErrorCodes, ProtocolError, type ErrorCode } from '../errors.js';
import { FileToken } from '../protocol/constants.js';
import {
  decodeCopyEnd,
  decodeEntry,
  decodeEntryNumber,
  encodeEntryNumber,
  encodeHave,
  encodeResult,
  encodeTempNote,
  fileStreamDecoder,
  type CopyRequest,
  type EntryResult,
  type FileEntry,
} from '../protocol/file-messages.js';
import { matchesWildcard } from '../wildcard.js';
import { DirHandle, DirTree, EntryFailure, TempFile, describePathError, kindOf, tempName } from '../safe-paths.js';

/** What the agent decided before starting the receiver (passed as its one argument, JSON). */
export interface ReceiverJob {
  request: CopyRequest;
  /** Path patterns the client may write (policy); undefined: anything the user may. */
  allowed?: string[];
  /** Whether setuid and setgid bits may be kept (with preserve). */
  setuid: boolean;
  /** `USER[:GROUP]` for written files (`--owner`), where the policy lets the client choose; resolved here, through NSS. */
  owner?: string;
}

const HASH_CHUNK = 1024 * 1024;

/** Where the top-level entries go: into an existing directory, or (one source) as a new name. */
type Destination = { dir: DirHandle; rename?: string } | { problem: string; code: ErrorCode };

/** A file whose data is arriving. */
interface Incoming {
  entry: FileEntry;
  name: string;
  temp: TempFile;
  previous: string | null;
  /** Whether a file or link is there now (for --backup). */
  replacing: boolean;
  /** The file there now, offered to the client (HAV) as maybe the same: open until SAM or the data decides. */
  offered?: ExistingFile;
}

/** A regular file found at an entry's path: open, its status when it was hashed, its sha256. */
interface ExistingFile {
  fd: number;
  stat: fs.Stats;
  sha256: string;
}

export class FileReceiver {
  private readonly decoder = fileStreamDecoder();
  private destination: Destination | undefined;
  /** Directories below the destination, opened or created so far, by relative path. */
  private readonly dirs = new DirTree();
  private next = 0;
  private incoming: Incoming | undefined;
  /** The file entry whose data is refused (failed already): its DAT is read and dropped until END. */
  private discarding: number | undefined;
  private failures = 0;

  constructor(
    private readonly job: ReceiverJob,
    private readonly send: (frame: Buffer) => void,
  ) {}

  /** Bytes of the file stream. Throws ProtocolError when the stream is broken. */
  push(chunk: Buffer): void {
    for (const frame of this.decoder.decode(chunk)) {
      switch (frame.token) {
        case FileToken.ENTRY:
          this.entry(decodeEntry(frame.payload));
          break;
        case FileToken.DATA:
          this.data(frame.payload);
          break;
        case FileToken.END:
          this.endOfData(decodeCopyEnd(frame.payload));
          break;
        case FileToken.SAME:
          this.same(decodeEntryNumber(frame.payload, FileToken.SAME));
          break;
        default:
          throw new ProtocolError(`unexpected ${frame.token} in the file stream`);
      }
    }
  }

  /** The stream has ended; the exit status: 0 when every entry was written or unchanged, 1 otherwise. */
  finish(): number {
    if (this.incoming) this.fail(this.incoming.entry, new EntryFailure('the transfer was interrupted before the file was complete'));
    this.closeAll();
    return this.failures > 0 ? 1 : 0;
  }

  /** A signal: remove the temporary file of an incomplete entry, nothing else. */
  abort(): void {
    this.dropIncoming();
  }

  private entry(entry: FileEntry): void {
    if (this.incoming || this.discarding !== undefined) throw new ProtocolError('ENT while a file is still arriving');
    if (entry.i !== this.next) throw new ProtocolError(`ENT ${entry.i} where ${this.next} was expected`);
    this.next += 1;
    try {
      const { parent, name } = this.place(entry.path);
      this.authorize(parent.pathOf(name));
      if (entry.type === 'dir') this.directory(entry, parent, name);
      else if (entry.type === 'link') this.link(entry, parent, name);
      else this.file(entry, parent, name);
    } catch (err) {
      this.fail(entry, err);
    }
  }

  /** The directory an entry goes into, and its name there. */
  private place(path: string): { parent: DirHandle; name: string } {
    const destination = this.resolveDestination();
    if ('problem' in destination) throw new EntryFailure(destination.problem, destination.code);
    const names = path.split('/');
    if (destination.rename !== undefined) names[0] = destination.rename;
    const name = names.pop()!;
    return { parent: this.dirs.open(destination.dir, names), name };
  }

  private resolveDestination(): Destination {
    if (this.destination) return this.destination;
    const { dest, sources } = this.job.request;
    this.destination = ((): Destination => {
      let real: string | undefined;
      try {
        real = fs.realpathSync.native(dest);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return { problem: `${dest}: ${describePathError(err)}`, code: ErrorCodes.FILE };
      }
      if (real !== undefined && fs.statSync(real).isDirectory()) return { dir: DirHandle.open(real) };
      if (sources > 1) return { problem: `${dest} is not a directory (${sources} sources go into one)`, code: ErrorCodes.FILE };
      if (dest.endsWith('/')) return { problem: `${dest}: no such directory`, code: ErrorCodes.FILE };
      // One source under a new name (or over a file): its directory must exist.
      const parent = posix.dirname(dest);
      try {
        return { dir: DirHandle.open(fs.realpathSync.native(parent)), rename: posix.basename(dest) };
      } catch (err) {
        return { problem: `${parent}: ${describePathError(err)}`, code: ErrorCodes.FILE };
      }
    })();
    return this.destination;
  }

  private resolvedOwner: { uid: number; gid: number } | undefined;

  /** The `--owner` user and group as ids (the user's own group when none is named); a name that does not exist fails the entry. */
  private owner(): { uid: number; gid: number } | undefined {
    const asked = this.job.owner;
    if (asked === undefined) return undefined;
    if (!this.resolvedOwner) {
      const [user, group] = asked.split(':') as [string, string | undefined];
      const passwd = getent('passwd', user);
      if (!passwd) throw new EntryFailure(`--owner: no user ${user} on this host`);
      let gid = Number(passwd[3]);
      if (group !== undefined) {
        const entry = getent('group', group);
        if (!entry) throw new EntryFailure(`--owner: no group ${group} on this host`);
        gid = Number(entry[2]);
      }
      this.resolvedOwner = { uid: Number(passwd[2]), gid };
    }
    return this.resolvedOwner;
  }

  private authorize(path: string): void {
    const { allowed } = this.job;
    if (allowed && !allowed.some((pattern) => matchesWildcard(pattern, path))) {
      throw new EntryFailure(`${path} is not a path this client may write`, ErrorCodes.DENIED);
    }
  }

  /** The mode a written entry gets: never world-writable; setuid and setgid only where allowed. */
  private modeOf(entry: FileEntry): number {
    let mode = this.job.request.preserve ? entry.mode : entry.mode & 0o777;
    if (!this.job.setuid) mode &= ~0o6000;
    return mode & ~0o002;
  }

  private directory(entry: FileEntry, parent: DirHandle, name: string, lookedAgain = false): void {
    const path = parent.pathOf(name);
    const existing = parent.lstat(name);
    const mode = this.modeOf(entry);
    if (existing && !existing.isDirectory()) throw new EntryFailure(`${path} exists and is not a directory`);
    if (!existing) {
      // Made by something else since the look: taken for what it is now, once.
      if (!parent.mkdirUnlessThere(name, 0o700)) {
        if (lookedAgain) throw new EntryFailure(`${path} keeps appearing and disappearing`);
        return this.directory(entry, parent, name, true);
      }
      const dir = parent.openDir(name);
      // The owner first: changing it clears setgid, which the mode then sets.
      this.ownAndDate(entry, (uid, gid) => dir.chown(uid, gid));
      dir.chmod(mode);
      this.rememberDir(entry.path, dir);
      this.result({ i: entry.i, path, outcome: 'changed', what: 'content' });
      return;
    }
    const dir = parent.openDir(name);
    this.rememberDir(entry.path, dir);
    if (this.job.request.preserve && (existing.mode & 0o7777) !== mode) {
      dir.chmod(mode);
      this.result({ i: entry.i, path, outcome: 'changed', what: 'mode' });
    } else {
      this.result({ i: entry.i, path, outcome: 'unchanged' });
    }
  }

  private rememberDir(path: string, dir: DirHandle): void {
    const names = path.split('/');
    if (this.destinationRename() !== undefined) names[0] = this.destinationRename()!;
    this.dirs.remember(names.join('/'), dir);
  }

  private destinationRename(): string | undefined {
    const d = this.destination;
    return d && 'dir' in d ? d.rename : undefined;
  }

  private link(entry: FileEntry, parent: DirHandle, name: string): void {
    const path = parent.pathOf(name);
    const existing = parent.lstat(name);
    if (existing?.isDirectory()) throw new EntryFailure(`${path} is a directory`);
    if (existing?.isSymbolicLink() && fs.readlinkSync(parent.at(name)) === entry.target) {
      this.result({ i: entry.i, path, outcome: 'unchanged' });
      return;
    }
    const temp = tempName();
    this.send(encodeTempNote({ i: entry.i, path: parent.pathOf(temp) }));
    parent.symlink(entry.target!, temp);
    try {
      parent.rename(temp, name);
    } catch (err) {
      parent.unlink(temp);
      throw err;
    }
    parent.sync();
    this.result({ i: entry.i, path, outcome: 'changed', what: 'content' });
  }

  private file(entry: FileEntry, parent: DirHandle, name: string): void {
    const path = parent.pathOf(name);
    const existing = parent.lstat(name);
    if (existing?.isDirectory()) throw new EntryFailure(`${path} is a directory`);
    if (existing && !existing.isFile() && !existing.isSymbolicLink()) {
      throw new EntryFailure(`${path} exists and is not a regular file (${kindOf(existing)}); it is left as it is`);
    }
    let found: ExistingFile | undefined;
    if (existing?.isFile()) found = this.existingFile(parent, name);
    let offered: ExistingFile | undefined;
    try {
      if (found && found.stat.size === entry.size) {
        if (entry.sha256 === found.sha256) {
          this.sameContent(entry, path, found);
          return;
        }
        // Announced without its sha256: the client compares (HAV), and answers SAM or the data.
        if (entry.sha256 === undefined) offered = found;
      }
      const temp = tempName();
      // Said before the file exists: if the receiver is killed, the agent removes it.
      this.send(encodeTempNote({ i: entry.i, path: parent.pathOf(temp) }));
      this.incoming = {
        entry,
        name,
        temp: new TempFile(parent, temp),
        previous: found?.sha256 ?? null,
        replacing: existing !== undefined,
        ...(offered ? { offered } : {}),
      };
    } finally {
      // An offered file stays open with its entry (release() closes it); any other is done with.
      if (found && this.incoming?.offered !== found) fs.closeSync(found.fd);
    }
    this.send(offered ? encodeHave({ i: entry.i, sha256: offered.sha256 }) : encodeEntryNumber(FileToken.WANT, entry.i));
  }

  /** The regular file at `name`, open, with its status and sha256 (the caller closes it). */
  private existingFile(parent: DirHandle, name: string): ExistingFile {
    // O_NONBLOCK: a FIFO swapped in since the lstat does not block the open.
    const fd = parent.openFile(name, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    try {
      const stat = fs.fstatSync(fd);
      if (!stat.isFile()) throw new EntryFailure(`${parent.pathOf(name)} is not a regular file; it is left as it is`);
      return { fd, stat, sha256: hashOf(fd) };
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }

  /**
   * The file there has the entry's content: unchanged, or changed when its mode or owner
   * must be set (on the open file; nothing is sent).
   */
  private sameContent(entry: FileEntry, path: string, found: ExistingFile): void {
    const { fd, stat, sha256 } = found;
    const mode = this.modeOf(entry);
    const owner = this.owner();
    const ownerDiffers = owner !== undefined && (stat.uid !== owner.uid || stat.gid !== owner.gid);
    const outcome = (stat.mode & 0o7777) === mode && !ownerDiffers ? 'unchanged' : 'changed';
    if (ownerDiffers) fs.fchownSync(fd, owner!.uid, owner!.gid);
    if (outcome === 'changed') fs.fchmodSync(fd, mode);
    this.result({ i: entry.i, path, outcome, sha256, size: entry.size, ...(outcome === 'changed' ? { what: 'mode', previous: sha256 } : {}) });
  }

  /** SAM: the client's file is the one offered. It is kept, if it is still the file that was hashed. */
  private same(i: number): void {
    if (this.discarding === i) {
      this.discarding = undefined;
      return;
    }
    const incoming = this.incoming;
    if (!incoming || incoming.entry.i !== i || !incoming.offered || incoming.temp.bytes > 0) {
      throw new ProtocolError(`SAM ${i} for a file that was not offered`);
    }
    const { entry, name, temp, offered } = incoming;
    this.incoming = undefined;
    temp.drop();
    const path = temp.dir.pathOf(name);
    try {
      const now = fs.fstatSync(offered.fd);
      const there = temp.dir.lstat(name);
      const sameFile = (a: fs.Stats, b: fs.Stats): boolean => a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.ctimeMs === b.ctimeMs;
      if (!there || !sameFile(now, offered.stat) || !sameFile(there, offered.stat)) {
        throw new EntryFailure(`${path} changed on the host while it was compared; nothing was written (copy again)`);
      }
      this.sameContent(entry, path, offered);
    } catch (err) {
      this.fail(entry, err);
    } finally {
      fs.closeSync(offered.fd);
    }
  }

  private data(chunk: Buffer): void {
    if (this.discarding !== undefined) return;
    const incoming = this.incoming;
    if (!incoming) throw new ProtocolError('DAT without a file being received');
    if (incoming.temp.bytes + chunk.length > incoming.entry.size!) {
      this.fail(incoming.entry, new EntryFailure(`more data than the ${incoming.entry.size} bytes announced`, ErrorCodes.LIMIT));
      return;
    }
    try {
      incoming.temp.write(chunk);
    } catch (err) {
      this.fail(incoming.entry, err);
    }
  }

  private endOfData({ i, sha256: sent }: { i: number; sha256?: string }): void {
    if (this.discarding === i) {
      this.discarding = undefined;
      return;
    }
    const incoming = this.incoming;
    if (!incoming || incoming.entry.i !== i) throw new ProtocolError(`END ${i} for a file that is not being received`);
    const { entry, name, temp } = incoming;
    const parent = temp.dir;
    this.release(incoming);
    try {
      if (temp.bytes !== entry.size) {
        throw new EntryFailure(`only ${temp.bytes} of ${entry.size} bytes arrived (the source changed while it was read?)`);
      }
      const expected = entry.sha256 ?? sent;
      if (expected === undefined) throw new EntryFailure('the client sent no sha256 for the data of a file announced without one');
      const sha256 = temp.digest();
      if (sha256 !== expected || (sent !== undefined && sent !== expected))
        throw new EntryFailure('the content that arrived does not match its sha256 (the source changed while it was read?)');
      temp.commit(
        name,
        this.modeOf(entry),
        (fd) =>
          this.ownAndDate(
            entry,
            (uid, gid) => fs.fchownSync(fd, uid, gid),
            (mtime) => fs.futimesSync(fd, mtime, mtime),
          ),
        () => {
          if (this.job.request.backup && incoming.replacing) parent.link(name, backupName(parent, name));
        },
      );
      this.incoming = undefined;
      this.result({ i, path: parent.pathOf(name), outcome: 'changed', what: 'content', sha256, size: entry.size, previous: incoming.previous });
    } catch (err) {
      this.fail(entry, err);
      this.discarding = undefined; // END is here: nothing more of this entry follows
    }
  }

  private ownAndDate(entry: FileEntry, chown: (uid: number, gid: number) => void, utimes?: (mtime: Date) => void): void {
    const owner = this.owner();
    if (owner) chown(owner.uid, owner.gid);
    if (utimes && this.job.request.preserve && entry.mtimeMs !== undefined) utimes(new Date(entry.mtimeMs));
  }

  /** Reports an entry as failed; a file whose data is still to come is then read and dropped until its END. */
  private fail(entry: FileEntry, err: unknown): void {
    const wasIncoming = this.incoming?.entry.i === entry.i;
    if (wasIncoming) this.dropIncoming();
    if (wasIncoming) this.discarding = entry.i;
    this.failures += 1;
    const code = err instanceof EntryFailure ? err.code : ErrorCodes.FILE;
    const reason = err instanceof EntryFailure ? err.message : describePathError(err);
    let path: string;
    try {
      const { parent, name } = this.place(entry.path);
      path = parent.pathOf(name);
    } catch {
      path = posix.join(this.job.request.dest, entry.path);
    }
    this.result({ i: entry.i, path, outcome: 'failed', code, reason });
  }

  private dropIncoming(): void {
    if (this.incoming) this.release(this.incoming);
    this.incoming?.temp.drop();
    this.incoming = undefined;
  }

  /** Closes the offered file of an incoming entry, once its data has decided. */
  private release(incoming: Incoming): void {
    if (incoming.offered) fs.closeSync(incoming.offered.fd);
    delete incoming.offered;
  }

  private result(result: EntryResult): void {
    this.send(encodeResult(result));
  }

  private closeAll(): void {
    this.dirs.close();
    const d = this.destination;
    if (d && 'dir' in d) d.dir.close();
  }
}

/** One NSS entry (`getent passwd NAME`, `getent group NAME`) as its fields, or undefined. */
function getent(database: 'passwd' | 'group', name: string): string[] | undefined {
  const result = spawnSync('getent', [database, name], { encoding: 'utf8' });
  const fields = result.status === 0 ? result.stdout.split('\n')[0]!.split(':') : [];
  return fields.length >= 3 && /^\d+$/.test(fields[2]!) ? fields : undefined;
}

/** NAME.~N~ with the next free N, as `install -b` and `cp --backup=numbered` name them. */
function backupName(parent: DirHandle, name: string): string {
  for (let n = 1; n < 10_000; n++) {
    const candidate = `${name}.~${n}~`;
    if (Buffer.byteLength(candidate) > 255) break;
    if (!parent.lstat(candidate)) return candidate;
  }
  throw new EntryFailure(`no free backup name for ${parent.pathOf(name)}`);
}

function hashOf(fd: number): string {
  const hash = createHash('sha256');
  const buffer = Buffer.allocUnsafe(HASH_CHUNK);
  for (let position = 0; ; ) {
    const n = fs.readSync(fd, buffer, 0, buffer.length, position);
    if (n === 0) break;
    hash.update(buffer.subarray(0, n));
    position += n;
  }
  return hash.digest('hex');
}
