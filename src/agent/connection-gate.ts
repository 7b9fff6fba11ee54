// A bound on connections that are not (yet) sessions: from TCP accept through the TLS
// handshake and the agent's checks, until a session starts or the connection closes.
// Without it idle TCP connections, which cost an attacker nothing, use up the agent's
// open-files limit and memory, and legitimate clients are turned away.
//
// When a bound is reached the OLDEST such connection is dropped, not the new one: a
// legitimate client completes its handshake within milliseconds, so the connections
// that have waited longest are the idle ones, and a new client always gets its chance.
// The per-source bound keeps one address (one /64 for IPv6, where a single host may
// hold a whole prefix) from pushing out the connections of others; when the total is
// reached, the connection dropped is the oldest of the source that holds the most, so
// a flood from a few addresses does not cut off a client's handshake elsewhere.
import { isIPv6 } from 'node:net';

/** A connection the gate counts: a TCP socket, or a session's carrier through a broker (its address then names the client it claims). */
interface GatedConnection {
  readonly remoteAddress?: string;
  destroy(): void;
  once(event: 'close', listener: () => void): unknown;
}

export interface GateLimits {
  /** Connections not yet sessions, from every source together. */
  total: number;
  /** Of those, from one source address (IPv6: one /64). */
  perSource: number;
}

interface Dropped {
  socket: GatedConnection;
  source: string;
  /** Which bound made room: the source's or the total. */
  bound: 'perSource' | 'total';
}

/** The address a bound applies to: IPv4 (also IPv4-mapped IPv6) as is, IPv6 by its /64. */
function sourceOf(address: string | undefined): string {
  if (!address) return '';
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1]!;
  if (!isIPv6(address)) return address;
  const [head = '', tail = ''] = address.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = address.includes('::') ? [...left, ...Array(8 - left.length - right.length).fill('0'), ...right] : left;
  return `${groups
    .slice(0, 4)
    .map((g) => g.toLowerCase().replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}

export class ConnectionGate {
  /** Every pending connection and its source. */
  private readonly pending = new Map<GatedConnection, string>();
  /** Per source, in arrival order. */
  private readonly bySource = new Map<string, Set<GatedConnection>>();

  constructor(private limits: GateLimits) {}

  setLimits(limits: GateLimits): void {
    this.limits = limits;
  }

  get size(): number {
    return this.pending.size;
  }

  /** A new connection: counted until `release` or its close. Returns what was dropped to make room. */
  admit(socket: GatedConnection): Dropped | undefined {
    const source = sourceOf(socket.remoteAddress);
    const fromSource = this.bySource.get(source);
    let dropped: Dropped | undefined;
    if (fromSource && fromSource.size >= this.limits.perSource) {
      dropped = { socket: fromSource.values().next().value!, source, bound: 'perSource' };
    } else if (this.pending.size >= this.limits.total) {
      const [heaviest, sockets] = this.heaviestSource();
      dropped = { socket: sockets.values().next().value!, source: heaviest, bound: 'total' };
    }
    if (dropped) {
      this.release(dropped.socket);
      dropped.socket.destroy();
    }
    this.pending.set(socket, source);
    const set = this.bySource.get(source) ?? new Set<GatedConnection>();
    set.add(socket);
    this.bySource.set(source, set);
    socket.once('close', () => this.release(socket));
    return dropped;
  }

  /** The source with the most pending connections (the first such, on a tie). */
  private heaviestSource(): [string, Set<GatedConnection>] {
    let heaviest: [string, Set<GatedConnection>] | undefined;
    for (const entry of this.bySource) if (!heaviest || entry[1].size > heaviest[1].size) heaviest = entry;
    return heaviest!;
  }

  /** The connection became a session (sessions have limits of their own) or closed. */
  release(socket: GatedConnection): void {
    const source = this.pending.get(socket);
    if (source === undefined) return;
    this.pending.delete(socket);
    const set = this.bySource.get(source)!;
    set.delete(socket);
    if (set.size === 0) this.bySource.delete(source);
  }
}
