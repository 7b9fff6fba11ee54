// A real AgentSession on one end of an in-memory duplex pair: no TLS, no agent process.
// The agent's rules (admission, policy, audit, flow control) run as they do in the
// daemon; only the commands it runs are real processes.
import { once } from 'node:events';
import { type Duplex, duplexPair } from 'node:stream';
import { pino } from 'pino';
import type { AuditRecord, AuditSink } from '../../src/agent/audit.js';
import { loadAgentConfig, type AgentConfig } from '../../src/agent/config.js';
import { agentUser } from '../../src/agent/local-users.js';
import type { PendingMemory } from '../../src/agent/pending-memory.js';
import type { AgentRuntime } from '../../src/agent/runtime.js';
import { AgentSession, type PeerIdentity } from '../../src/agent/session.js';
import { tokenDigest } from '../../src/agent/token-digest.js';

const MEMORY_CLIENT: PeerIdentity = { name: 'admin', serial: '0a1b', fingerprint: 'AB:CD', peer: '192.0.2.7:40000' };

export interface MemoryAgentSetup {
  config?: Partial<AgentConfig>;
  /** The token the agent requires. */
  token?: string;
  memory?: PendingMemory;
  /** Where audit records go; default: kept in `records`. */
  audit?: AuditSink;
}

interface MemoryAgent {
  session: AgentSession;
  /** The client's end of the pair. */
  clientSide: Duplex;
  records: AuditRecord[];
  /** Resolves once the agent has closed its end and released the session. */
  released: Promise<void>;
}

export function memoryAgent(setup: MemoryAgentSetup = {}): MemoryAgent {
  const [agentSide, clientSide] = duplexPair();
  // As a TLS socket does (no half-open connections): the client's end closes the agent's.
  agentSide.once('end', () => agentSide.destroy());
  const records: AuditRecord[] = [];
  const audit: AuditSink = setup.audit ?? { write: (record) => records.push(structuredClone(record)) };
  const config = { ...loadAgentConfig(undefined, { ca: 'ca.crt', cert: 'agent.crt', key: 'agent.key' }), ...setup.config };
  const runtime: AgentRuntime = {
    config,
    tls: { ca: Buffer.alloc(0), cert: Buffer.alloc(0), key: Buffer.alloc(0) },
    broker: undefined,
    tokenDigest: setup.token === undefined ? undefined : tokenDigest(Buffer.from(setup.token)),
    agentUser: agentUser(),
    users: new Map(),
    audit,
  };
  const session = new AgentSession({
    transport: agentSide,
    runtime,
    identity: MEMORY_CLIENT,
    id: 7,
    log: pino({ level: 'silent' }),
    software: 'distrunner-agent/test',
    helpers: { memory: setup.memory },
  });
  const released = Promise.all([once(agentSide, 'close'), once(session, 'released')]).then(() => undefined);
  return { session, clientSide, records, released };
}
