// TLS session tickets kept between runs, one per agent, so that the next run resumes
// the TLS session instead of a full handshake: no certificate signatures and no chain
// checks on either side, about half of a short command's cost. The agent still applies
// its per-session checks to the certificate the session was made with (docs/security.md).
//
// A ticket lets its holder resume a session as this client until it expires (at most
// the agent's tlsSessionSeconds), so the file is as private as the client key: 0600 in
// a 0700 directory, one file per client certificate. Unreadable or damaged files are
// treated as empty: the cache only ever saves time.
import { createHash } from 'node:crypto';
import { closeSync, fstatSync, openSync, readFileSync, rmSync, statSync, type Stats } from 'node:fs';
import { dirname, join } from 'node:path';
import { ensurePrivateDir, isPrivateDir, writeFileWithMode } from '../../private-files.js';
import type { AgentCertificateRecord } from './agent-certificate.js';

// 2: each ticket carries the agent certificate's record (files of version 1 are dropped).
// 3: lines: a header, then one ticket a line as `KEY<TAB>SAVED_AT<TAB>ENTRY` (KEY a JSON
//    string, ENTRY a JSON object), so that opening the file reads only the keys: at
//    10,000 agents it is tens of megabytes, and a run needs the tickets of its own hosts.
const FORMAT_VERSION = 3;
/** TLS 1.3 caps a ticket's lifetime at 7 days; older entries are dropped when saving. */
const MAX_AGE_MS = 7 * 24 * 60 * 60 * 1000;
const TAB = 0x09;
const NEWLINE = 0x0a;

/** A ticket and the agent certificate it was issued under. */
export interface TlsSessionTicket {
  ticket: Buffer;
  agent: AgentCertificateRecord;
}

/** A line's ENTRY. */
interface StoredEntry {
  /** The serialized TLS session (node:tls 'session' event), base64. */
  ticket: string;
  /** The certificate the agent's session was made with: checked again on resumption. */
  agent: AgentCertificateRecord;
}

const isRecord = (agent: AgentCertificateRecord | undefined): boolean =>
  typeof agent?.serial === 'string' && typeof agent.notBefore === 'number' && typeof agent.notAfter === 'number';

/** What the file was when it was read (renames give a new inode): unchanged at save, it need not be read again. */
type FileVersion = string | undefined;

const versionOf = (stats: Stats): FileVersion => `${stats.dev}:${stats.ino}:${stats.size}:${stats.mtimeMs}`;

/** One agent's line in the file: its ENTRY is parsed only when its ticket is asked for. */
interface FileLine {
  savedAt: number;
  /** The whole line, newline included (written back as it is). */
  line: Buffer;
  /** Where its ENTRY starts in `line`. */
  entryAt: number;
}

/** A ticket of this run's, to be written. */
interface NewTicket extends TlsSessionTicket {
  savedAt: number;
}

/** The file as read: its lines by key, and its version then (undefined: there was none to read). */
interface CacheFile {
  lines: Map<string, FileLine>;
  version: FileVersion;
}

const noCacheFile = (): CacheFile => ({ lines: new Map(), version: undefined });

// Damage anywhere in what is read here (a header or a key) empties the cache; a damaged
// ENTRY only loses its own ticket (ticketFor).
function readCacheFile(file: string): CacheFile {
  const lines = new Map<string, FileLine>();
  let fd: number | undefined;
  try {
    fd = openSync(file, 'r');
    const version = versionOf(fstatSync(fd));
    const bytes = readFileSync(fd);
    let start = bytes.indexOf(NEWLINE) + 1;
    const header = JSON.parse(bytes.toString('utf8', 0, start > 0 ? start : bytes.length)) as { version?: unknown };
    if (header?.version !== FORMAT_VERSION) return { lines, version };
    while (start < bytes.length) {
      const end = bytes.indexOf(NEWLINE, start);
      if (end === -1) throw new Error('a line without its end');
      const keyEnd = bytes.indexOf(TAB, start);
      const savedEnd = keyEnd === -1 ? -1 : bytes.indexOf(TAB, keyEnd + 1);
      if (savedEnd === -1 || savedEnd > end) throw new Error('a line without its fields');
      const key: unknown = JSON.parse(bytes.toString('utf8', start, keyEnd));
      const savedAt = Number(bytes.toString('latin1', keyEnd + 1, savedEnd));
      if (typeof key !== 'string' || !Number.isSafeInteger(savedAt)) throw new Error('a bad key or time');
      lines.set(key, { savedAt, line: bytes.subarray(start, end + 1), entryAt: savedEnd + 1 - start });
      start = end + 1;
    }
    return { lines, version };
  } catch {
    return noCacheFile();
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function ticketOf(stored: FileLine): TlsSessionTicket | undefined {
  try {
    const entry = JSON.parse(stored.line.toString('utf8', stored.entryAt, stored.line.length - 1)) as StoredEntry;
    if (typeof entry?.ticket !== 'string' || !isRecord(entry.agent)) return undefined;
    return { ticket: Buffer.from(entry.ticket, 'base64'), agent: entry.agent };
  } catch {
    return undefined;
  }
}

function lineOf(key: string, { ticket, agent, savedAt }: NewTicket): string {
  return `${JSON.stringify(key)}\t${savedAt}\t${JSON.stringify({ ticket: ticket.toString('base64'), agent } satisfies StoredEntry)}\n`;
}

export class TlsTicketCache {
  private readonly updated = new Map<string, NewTicket>();
  private readonly forgotten = new Set<string>();

  private constructor(
    private readonly file: string | undefined,
    private readonly stored: CacheFile,
  ) {}

  /**
   * The cache of the client whose certificate is `clientCert`, trusting the CA `caCert`,
   * in `dir`: a session verified against one CA is never resumed under another.
   */
  static open(dir: string, clientCert: Buffer, caCert: Buffer): TlsTicketCache {
    const identity = createHash('sha256').update(clientCert).update(caCert).digest('hex').slice(0, 16);
    const file = join(dir, `sessions-${identity}.jsonl`);
    // Tickets planted in a directory others can write to are not ours to present.
    return new TlsTicketCache(file, isPrivateDir(dir) ? readCacheFile(file) : noCacheFile());
  }

  /** A cache that remembers nothing (DISTRUN_TLS_CACHE=off). */
  static disabled(): TlsTicketCache {
    return new TlsTicketCache(undefined, noCacheFile());
  }

  ticketFor(address: string, port: number): TlsSessionTicket | undefined {
    const stored = this.stored.lines.get(key(address, port));
    return stored && !this.forgotten.has(key(address, port)) ? ticketOf(stored) : undefined;
  }

  remember(address: string, port: number, { ticket, agent }: TlsSessionTicket): void {
    if (!this.file) return;
    this.forgotten.delete(key(address, port));
    this.updated.set(key(address, port), { ticket, agent, savedAt: Date.now() });
  }

  /** Drops the agent's ticket (its handshake failed: start afresh next time). */
  forget(address: string, port: number): void {
    this.updated.delete(key(address, port));
    this.forgotten.add(key(address, port));
  }

  /**
   * Writes this run's tickets, merged with what is on disk now (another run may have
   * saved since this one started; the newer ticket wins). Errors are left to the caller.
   * Lines of other agents are written back as they were read.
   */
  save(now = Date.now()): void {
    if (!this.file || (this.updated.size === 0 && this.forgotten.size === 0)) return;
    const onDisk = this.onDiskNow(this.file);
    const pieces: Array<string | Buffer> = [`${JSON.stringify({ version: FORMAT_VERSION })}\n`];
    for (const [k, stored] of onDisk) {
      const mine = this.updated.get(k);
      if (this.forgotten.has(k) || (mine && mine.savedAt >= stored.savedAt) || now - stored.savedAt >= MAX_AGE_MS) continue;
      pieces.push(stored.line);
    }
    for (const [k, mine] of this.updated) {
      const stored = onDisk.get(k);
      if ((stored === undefined || mine.savedAt >= stored.savedAt) && now - mine.savedAt < MAX_AGE_MS) pieces.push(lineOf(k, mine));
    }
    if (!ensurePrivateDir(dirname(this.file))) return;
    writeFileWithMode(this.file, pieces, 0o600, { durable: false });
    // The same cache in format 2 (sessions-ID.json), now stale.
    rmSync(this.file.replace(/\.jsonl$/, '.json'), { force: true });
  }

  // What was read at the start, unless another run has saved since.
  private onDiskNow(file: string): Map<string, FileLine> {
    if (this.stored.version !== undefined) {
      try {
        if (versionOf(statSync(file)) === this.stored.version) return this.stored.lines;
      } catch {
        // Gone: read below (and found empty).
      }
    }
    return readCacheFile(file).lines;
  }
}

function key(address: string, port: number): string {
  return `${address} ${port}`;
}
