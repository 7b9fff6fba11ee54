// One host's side of a fetch, on the client: the sender's file stream (the session's
// output, protocol 5) written under LOCALDIR/HOST, trusting nothing the agent says. The
// host's name is checked before it becomes a directory; every entry path is checked
// component by component (file-messages.ts) and every directory below LOCALDIR/HOST is
// entered without following links (safe-paths.ts), so no entry lands outside it; the
// per-host cap is counted here too; each file is written to a temporary file in its
// directory, checked against the size and sha256 the sender gives in END, fsynced and
// renamed over the target. A host whose stream breaks these rules fails, and its
// incomplete file is removed.
import * as fs from 'node:fs';
import { ErrorCodes, ProtocolError } from '../../errors.js';
import { FileToken } from '../../protocol/constants.js';
import { decodeEntry, decodeResult, decodeSentEnd, fileStreamDecoder, type FileEntry } from '../../protocol/file-messages.js';
import { DirHandle, DirTree, EntryFailure, TempFile, describePathError, tempName } from '../../safe-paths.js';
import type { Session } from './session.js';

/** One entry of a fetch as the client reports it: the path on the host, and where it went here. */
export interface FetchedEntry {
  i: number;
  /** The path on the host. */
  path: string;
  outcome: 'fetched' | 'failed';
  /** Where it was written (fetched). */
  local?: string;
  size?: number;
  sha256?: string;
  reason?: string;
}

/** Why a host name cannot be a directory name under LOCALDIR, or undefined when it can. */
export function hostDirectoryProblem(name: string): string | undefined {
  if (name === '') return 'it is empty';
  if (name === '.' || name === '..') return `"${name}" is not a directory name`;
  if (name.includes('/')) return 'it contains /';
  if (name.includes('..')) return 'it contains ..';
  if (/[\u0000-\u001f\u007f-\u009f]/.test(name)) return 'it contains a control character';
  if (Buffer.byteLength(name) > 255) return 'it is longer than 255 bytes';
  return undefined;
}

/** A file arriving. */
interface Incoming {
  entry: FileEntry;
  name: string;
  temp: TempFile;
}

export class FetchWriter {
  private readonly decoder = fileStreamDecoder();
  private hostDir: DirHandle | undefined;
  /** Directories below LOCALDIR/HOST opened or created so far, by relative path. */
  private readonly dirs = new DirTree();
  private next = 0;
  private incoming: Incoming | undefined;
  /** A file entry that failed here: its data is dropped until its END or FIL. */
  private discarding: FileEntry | undefined;
  private received = 0;
  readonly results: FetchedEntry[] = [];

  /** `localDir` exists; `host` has passed hostDirectoryProblem. */
  constructor(
    private readonly localDir: string,
    private readonly host: string,
    private readonly maxBytes: number,
    private readonly onEntry: (entry: FetchedEntry) => void = () => {},
  ) {
    const problem = hostDirectoryProblem(host);
    if (problem) throw new Error(`host name ${JSON.stringify(host)} cannot be a directory name: ${problem}`);
  }

  /** Bytes of the stream. Throws ProtocolError (E_PROTOCOL, E_LIMIT) when the host broke the rules: it fails. */
  push(chunk: Buffer): void {
    for (const { token, payload } of this.decoder.decode(chunk)) {
      switch (token) {
        case FileToken.ENTRY:
          this.entry(decodeEntry(payload, 'fetch'));
          break;
        case FileToken.DATA:
          this.data(payload);
          break;
        case FileToken.END:
          this.end(decodeSentEnd(payload));
          break;
        case FileToken.RESULT:
          this.failed(decodeResult(payload));
          break;
        default:
          throw new ProtocolError(`unexpected ${token} in the file stream`);
      }
    }
  }

  /** The stream has ended: a file still arriving is incomplete (removed, failed). */
  finish(): void {
    if (this.incoming) this.fail(this.incoming.entry, new EntryFailure('the stream ended before the file was complete'));
    this.close();
  }

  /** The host failed: its incomplete file is removed, nothing else is written. */
  abort(): void {
    this.dropIncoming();
    this.close();
  }

  private entry(entry: FileEntry): void {
    if (this.incoming || this.discarding) throw new ProtocolError('ENT while a file is still arriving');
    if (entry.i !== this.next) throw new ProtocolError(`ENT ${entry.i} where ${this.next} was expected`);
    this.next += 1;
    try {
      const names = entry.path.split('/');
      const name = names.pop()!;
      const parent = this.dirs.open(this.base(), names, { mode: 0o755 });
      const existing = parent.lstat(name);
      const local = parent.pathOf(name);
      if (entry.type === 'dir') {
        if (existing && !existing.isDirectory()) throw new EntryFailure(`${local} exists and is not a directory`);
        if (!existing) parent.mkdir(name, 0o700);
        const dir = parent.openDir(name);
        dir.chmod((entry.mode & 0o777 & ~0o022) | 0o700);
        this.dirs.remember(entry.path, dir);
        this.done({ i: entry.i, path: `/${entry.path}`, outcome: 'fetched', local });
        return;
      }
      if (existing?.isDirectory()) throw new EntryFailure(`${local} is a directory`);
      if (entry.type === 'link') {
        const temp = tempName();
        parent.symlink(entry.target!, temp);
        try {
          parent.rename(temp, name);
        } catch (err) {
          parent.unlink(temp);
          throw err;
        }
        this.done({ i: entry.i, path: `/${entry.path}`, outcome: 'fetched', local });
        return;
      }
      this.incoming = { entry, name, temp: new TempFile(parent) };
    } catch (err) {
      if (entry.type === 'file') this.discarding = entry;
      this.fail(entry, err);
    }
  }

  /** LOCALDIR/HOST, created on the first entry; a link there is not followed. */
  private base(): DirHandle {
    if (!this.hostDir) {
      const local = DirHandle.open(fs.realpathSync.native(this.localDir));
      try {
        if (!local.lstat(this.host)) local.mkdir(this.host, 0o755);
        this.hostDir = local.openDir(this.host);
      } catch (err) {
        throw new EntryFailure(`${local.pathOf(this.host)}: ${describePathError(err)}`);
      } finally {
        local.close();
      }
    }
    return this.hostDir;
  }

  private data(chunk: Buffer): void {
    this.received += chunk.length;
    if (this.received > this.maxBytes) {
      this.dropIncoming();
      throw new ProtocolError(`the agent sent more than --max-bytes (${this.maxBytes} bytes)`, ErrorCodes.LIMIT);
    }
    if (this.discarding) return;
    const incoming = this.incoming;
    if (!incoming) throw new ProtocolError('DAT without a file entry');
    try {
      incoming.temp.write(chunk);
    } catch (err) {
      this.discarding = incoming.entry;
      this.fail(incoming.entry, err);
    }
  }

  private end({ i, size, sha256 }: { i: number; size: number; sha256: string }): void {
    if (this.discarding?.i === i) {
      this.discarding = undefined;
      return;
    }
    const incoming = this.incoming;
    if (!incoming || incoming.entry.i !== i) throw new ProtocolError(`END ${i} for a file that is not arriving`);
    const { entry, name, temp } = incoming;
    try {
      if (temp.bytes !== size) throw new EntryFailure(`${temp.bytes} bytes arrived where the agent says it sent ${size}`);
      if (temp.digest() !== sha256) throw new EntryFailure('the data that arrived does not match the sha256 the agent sent');
      temp.commit(name, entry.mode & 0o777 & ~0o022);
      this.incoming = undefined;
      this.done({ i, path: `/${entry.path}`, outcome: 'fetched', local: temp.dir.pathOf(name), size, sha256 });
    } catch (err) {
      this.fail(entry, err);
    }
  }

  /** The sender's FIL: an entry it could not send (before its ENT, or in place of its END). */
  private failed(result: { i: number; path: string; outcome: string; reason?: string }): void {
    if (result.outcome !== 'failed') throw new ProtocolError(`a sender's FIL must say failed, not ${result.outcome}`);
    const current = this.incoming?.entry ?? this.discarding;
    if (current && current.i === result.i) {
      const wasDiscarding = this.discarding !== undefined;
      this.discarding = undefined;
      // Failed here already: the sender's reason is not needed twice.
      if (wasDiscarding) return;
    } else if (current) {
      throw new ProtocolError(`FIL ${result.i} while file ${current.i} is arriving`);
    } else if (result.i === this.next) {
      this.next += 1;
    } else {
      throw new ProtocolError(`FIL ${result.i} where ${this.next} was expected`);
    }
    this.dropIncoming();
    this.done({ i: result.i, path: result.path, outcome: 'failed', reason: result.reason });
  }

  private fail(entry: FileEntry, err: unknown): void {
    if (this.incoming?.entry.i === entry.i) this.dropIncoming();
    const reason = err instanceof EntryFailure ? err.message : describePathError(err);
    this.done({ i: entry.i, path: `/${entry.path}`, outcome: 'failed', reason });
  }

  private done(entry: FetchedEntry): void {
    this.results.push(entry);
    this.onEntry(entry);
  }

  private dropIncoming(): void {
    this.incoming?.temp.drop();
    this.incoming = undefined;
  }

  private close(): void {
    this.dirs.close();
    this.hostDir?.close();
    this.hostDir = undefined;
  }
}

/** Feeds one host's session output to its writer; a stream that breaks the rules fails the host. */
export function collectFetch(session: Session, writer: FetchWriter): void {
  let broken = false;
  session.on('stdout', (chunk) => {
    if (broken) return;
    try {
      writer.push(chunk);
    } catch (err) {
      broken = true;
      writer.abort();
      const code = err instanceof ProtocolError ? err.code : ErrorCodes.PROTOCOL;
      const message = (err as Error).message;
      session.abort(code, code === ErrorCodes.LIMIT ? message : `the agent's file sender broke the protocol: ${message}`);
    }
  });
  session.once('done', (result) => {
    if (broken) return;
    if (result.outcome.kind === 'exit') writer.finish();
    else writer.abort();
  });
}
