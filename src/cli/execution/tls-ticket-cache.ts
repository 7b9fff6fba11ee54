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
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ensurePrivateDir, isPrivateDir, writeFileWithMode } from '../../private-files.js';
import type { AgentCertificateRecord } from './agent-certificate.js';

// 2: each ticket carries the agent certificate's record (files of version 1 are dropped).
const FORMAT_VERSION = 2;
/** TLS 1.3 caps a ticket's lifetime at 7 days; older entries are dropped when saving. */
const MAX_AGE_MS = 7 * 24 * 60 * 60 * 1000;

interface StoredTicket {
  /** The serialized TLS session (node:tls 'session' event), base64. */
  ticket: string;
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

interface CacheFile {
  version: number;
  sessions: Record<string, StoredTicket>;
}

function readCacheFile(file: string): Map<string, StoredTicket> {
  try {
    const data = JSON.parse(readFileSync(file, 'utf8')) as CacheFile;
    if (data?.version !== FORMAT_VERSION || typeof data.sessions !== 'object' || data.sessions === null) return new Map();
    return new Map(
      Object.entries(data.sessions).filter(
        ([, entry]) => typeof entry?.ticket === 'string' && typeof entry.savedAt === 'number' && isRecord(entry.agent),
      ),
    );
  } catch {
    return new Map();
  }
}

export class TlsTicketCache {
  private readonly updated = new Map<string, StoredTicket>();
  private readonly forgotten = new Set<string>();

  private constructor(
    private readonly file: string | undefined,
    private readonly stored: Map<string, StoredTicket>,
  ) {}

  /**
   * The cache of the client whose certificate is `clientCert`, trusting the CA `caCert`,
   * in `dir`: a session verified against one CA is never resumed under another.
   */
  static open(dir: string, clientCert: Buffer, caCert: Buffer): TlsTicketCache {
    const identity = createHash('sha256').update(clientCert).update(caCert).digest('hex').slice(0, 16);
    const file = join(dir, `sessions-${identity}.json`);
    // Tickets planted in a directory others can write to are not ours to present.
    return new TlsTicketCache(file, isPrivateDir(dir) ? readCacheFile(file) : new Map());
  }

  /** A cache that remembers nothing (DISTRUN_TLS_CACHE=off). */
  static disabled(): TlsTicketCache {
    return new TlsTicketCache(undefined, new Map());
  }

  ticketFor(address: string, port: number): TlsSessionTicket | undefined {
    const entry = this.stored.get(key(address, port));
    return entry && !this.forgotten.has(key(address, port)) ? { ticket: Buffer.from(entry.ticket, 'base64'), agent: entry.agent } : undefined;
  }

  remember(address: string, port: number, { ticket, agent }: TlsSessionTicket): void {
    if (!this.file) return;
    this.forgotten.delete(key(address, port));
    this.updated.set(key(address, port), { ticket: ticket.toString('base64'), savedAt: Date.now(), agent });
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
    const merged = readCacheFile(this.file);
    for (const [k, entry] of this.updated) {
      if ((merged.get(k)?.savedAt ?? 0) <= entry.savedAt) merged.set(k, entry);
    }
    for (const k of this.forgotten) merged.delete(k);
    const sessions: Record<string, StoredTicket> = {};
    for (const [k, entry] of merged) if (now - entry.savedAt < MAX_AGE_MS) sessions[k] = entry;
    if (!ensurePrivateDir(dirname(this.file))) return;
    writeFileWithMode(this.file, JSON.stringify({ version: FORMAT_VERSION, sessions } satisfies CacheFile), 0o600, { durable: false });
  }
}

function key(address: string, port: number): string {
  return `${address} ${port}`;
}
