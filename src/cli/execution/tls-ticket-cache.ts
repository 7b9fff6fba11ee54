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
// 3: JSON lines, a header and then one ticket a line, read and written a line at a time
//    (at 10,000 agents the file is tens of megabytes: as one JSON text it was a heap
//    peak at start-up that V8 then let the heap grow from).
const FORMAT_VERSION = 3;
/** TLS 1.3 caps a ticket's lifetime at 7 days; older entries are dropped when saving. */
const MAX_AGE_MS = 7 * 24 * 60 * 60 * 1000;

interface StoredTicket {
  /** The serialized TLS session (node:tls 'session' event); base64 in the file. */
  ticket: Buffer;
  savedAt: number;
  /** The certificate the agent's session was made with: checked again on resumption. */
  agent: AgentCertificateRecord;
}

/** A ticket and the agent certificate it was issued under. */
export interface TlsSessionTicket {
  ticket: Buffer;
  agent: AgentCertificateRecord;
}

const isRecord = (agent: AgentCertificateRecord | undefined): boolean =>
  typeof agent?.serial === 'string' && typeof agent.notBefore === 'number' && typeof agent.notAfter === 'number';

/** The file: this line first, then a `TicketLine` for each agent. */
interface HeaderLine {
  version: number;
}

type TicketLine = Omit<StoredTicket, 'ticket'> & { key: string; ticket: string };

/** What the file was when it was read (renames give a new inode): unchanged at save, it need not be read again. */
type FileVersion = string | undefined;

const versionOf = (stats: Stats): FileVersion => `${stats.dev}:${stats.ino}:${stats.size}:${stats.mtimeMs}`;

function* linesOf(bytes: Buffer): Generator<string> {
  for (let start = 0; start < bytes.length; ) {
    const end = bytes.indexOf(0x0a, start);
    const stop = end === -1 ? bytes.length : end;
    yield bytes.toString('utf8', start, stop);
    start = stop + 1;
  }
}

function readCacheFile(file: string): { entries: Map<string, StoredTicket>; version: FileVersion } {
  const entries = new Map<string, StoredTicket>();
  let fd: number | undefined;
  let version: FileVersion;
  try {
    fd = openSync(file, 'r');
    version = versionOf(fstatSync(fd));
    const lines = linesOf(readFileSync(fd));
    const header = JSON.parse(lines.next().value ?? '') as HeaderLine;
    if (header?.version !== FORMAT_VERSION) return { entries, version };
    for (const text of lines) {
      const line = JSON.parse(text) as TicketLine;
      // Kept as bytes, not as their base64 text: outside V8's heap.
      if (typeof line?.key === 'string' && typeof line.ticket === 'string' && typeof line.savedAt === 'number' && isRecord(line.agent)) {
        entries.set(line.key, { ticket: Buffer.from(line.ticket, 'base64'), savedAt: line.savedAt, agent: line.agent });
      }
    }
    return { entries, version };
  } catch {
    // Damaged: as if empty (the cache only ever saves time).
    return { entries: new Map(), version };
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function* cacheFileLines(sessions: Iterable<[string, StoredTicket]>): Generator<string> {
  yield `${JSON.stringify({ version: FORMAT_VERSION } satisfies HeaderLine)}\n`;
  for (const [key, { ticket, savedAt, agent }] of sessions) {
    yield `${JSON.stringify({ key, ticket: ticket.toString('base64'), savedAt, agent } satisfies TicketLine)}\n`;
  }
}

export class TlsTicketCache {
  private readonly updated = new Map<string, StoredTicket>();
  private readonly forgotten = new Set<string>();

  private constructor(
    private readonly file: string | undefined,
    private readonly stored: Map<string, StoredTicket>,
    /** The file as `stored` was read from it. */
    private readonly storedVersion: FileVersion,
  ) {}

  /**
   * The cache of the client whose certificate is `clientCert`, trusting the CA `caCert`,
   * in `dir`: a session verified against one CA is never resumed under another.
   */
  static open(dir: string, clientCert: Buffer, caCert: Buffer): TlsTicketCache {
    const identity = createHash('sha256').update(clientCert).update(caCert).digest('hex').slice(0, 16);
    const file = join(dir, `sessions-${identity}.jsonl`);
    // Tickets planted in a directory others can write to are not ours to present.
    if (!isPrivateDir(dir)) return new TlsTicketCache(file, new Map(), undefined);
    const { entries, version } = readCacheFile(file);
    return new TlsTicketCache(file, entries, version);
  }

  /** A cache that remembers nothing (DISTRUN_TLS_CACHE=off). */
  static disabled(): TlsTicketCache {
    return new TlsTicketCache(undefined, new Map(), undefined);
  }

  ticketFor(address: string, port: number): TlsSessionTicket | undefined {
    const entry = this.stored.get(key(address, port));
    return entry && !this.forgotten.has(key(address, port)) ? { ticket: entry.ticket, agent: entry.agent } : undefined;
  }

  remember(address: string, port: number, { ticket, agent }: TlsSessionTicket): void {
    if (!this.file) return;
    this.forgotten.delete(key(address, port));
    this.updated.set(key(address, port), { ticket, savedAt: Date.now(), agent });
  }

  /** Drops the agent's ticket (its handshake failed: start afresh next time). */
  forget(address: string, port: number): void {
    this.updated.delete(key(address, port));
    this.forgotten.add(key(address, port));
  }

  /**
   * Writes this run's tickets, merged with what is on disk now (another run may have
   * saved since this one started; the newer ticket wins). Errors are left to the caller.
   */
  save(now = Date.now()): void {
    if (!this.file || (this.updated.size === 0 && this.forgotten.size === 0)) return;
    const merged = this.onDiskNow(this.file);
    for (const [k, entry] of this.updated) {
      if ((merged.get(k)?.savedAt ?? 0) <= entry.savedAt) merged.set(k, entry);
    }
    for (const k of this.forgotten) merged.delete(k);
    const fresh = [...merged].filter(([, entry]) => now - entry.savedAt < MAX_AGE_MS);
    if (!ensurePrivateDir(dirname(this.file))) return;
    writeFileWithMode(this.file, cacheFileLines(fresh), 0o600, { durable: false });
    // The same cache in format 2 (sessions-ID.json), now stale.
    rmSync(this.file.replace(/\.jsonl$/, '.json'), { force: true });
  }

  // What was read at the start, unless another run has saved since.
  private onDiskNow(file: string): Map<string, StoredTicket> {
    if (this.storedVersion !== undefined) {
      try {
        if (versionOf(statSync(file)) === this.storedVersion) return new Map(this.stored);
      } catch {
        // Gone: read below (and found empty).
      }
    }
    return readCacheFile(file).entries;
  }
}

function key(address: string, port: number): string {
  return `${address} ${port}`;
}
