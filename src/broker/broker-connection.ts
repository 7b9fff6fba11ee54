// The link to the fleet's NATS brokers (nats.js, @nats-io/transport-node): mutual TLS with
// the caller's own certificate (an agent's or a client's), TLS 1.3 required from our side
// (nats-server 2.9 cannot require it itself), and a broker accepted only if the fleet's
// CA issued its certificate for the broker role. Its name is not checked against the
// address: nats.js does not say which address it dialled when it asks, and the broker is
// only a carrier (every session inside is TLS end to end with the agent, which is
// checked by name as on a direct connection). Only the configured addresses are dialled:
// the cluster's gossip of other nodes' addresses is ignored.
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { PeerCertificate } from 'node:tls';
import { DistRunError, ErrorCodes } from '../errors.js';
import { TLS_SETTINGS } from '../protocol/tls-settings.js';
import { brokerCertificateProblem } from '../pki/certificate-role.js';

export type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';

/** The broker could not be reached or used. */
export class BrokerError extends DistRunError {
  constructor(message: string) {
    super(ErrorCodes.BROKER, message);
  }
}

export interface BrokerLogin {
  /** host:port each (broker-urls.ts). */
  urls: string[];
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
  /** Shown in the broker's connection list: who this is. */
  name: string;
}

export interface BrokerLinkPolicy {
  /** An agent keeps trying for ever; the CLI fails fast when no broker answers. */
  persistent: boolean;
  /** Connect (and per-attempt) timeout. */
  timeoutMs: number;
}

// After a broker restarts, a fleet's agents come back spread over this many seconds
// rather than all at once (Salt's thundering herd); nats.js adds the jitter to each wait.
const AGENT_RECONNECT_WAIT_MS = 1000;
const AGENT_RECONNECT_JITTER_MS = 4000;

function checkBroker(_host: string, cert: PeerCertificate): Error | undefined {
  const problem = brokerCertificateProblem(cert.raw);
  return problem === undefined ? undefined : new BrokerError(`the broker's certificate ${problem}; refusing to use it`);
}

export async function connectBroker(login: BrokerLogin, policy: BrokerLinkPolicy): Promise<NatsConnection> {
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers: login.urls,
      name: login.name,
      // nats.js hands these to tls.connect as they are (its types list only some of them).
      tls: {
        ca: login.ca.toString(),
        cert: login.cert.toString(),
        key: login.key.toString(),
        ...TLS_SETTINGS,
        checkServerIdentity: checkBroker,
      } as object,
      ignoreClusterUpdates: true,
      timeout: policy.timeoutMs,
      waitOnFirstConnect: policy.persistent,
      maxReconnectAttempts: policy.persistent ? -1 : login.urls.length,
      reconnectTimeWait: policy.persistent ? AGENT_RECONNECT_WAIT_MS : 250,
      reconnectJitter: policy.persistent ? AGENT_RECONNECT_JITTER_MS : 100,
      reconnectJitterTLS: policy.persistent ? AGENT_RECONNECT_JITTER_MS : 100,
    });
  } catch (err) {
    throw new BrokerError(`cannot connect to the broker (${login.urls.join(', ')}): ${describeNatsError(err)}`);
  }
  // A broker link without TLS (a broker configured without it) carries our sessions, but
  // nothing else would be private; it is refused.
  if (nc.info?.tls_required !== true) {
    await nc.close();
    throw new BrokerError(`the broker at ${nc.getServer()} does not require TLS; refusing to use it`);
  }
  return nc;
}

/** nats.js's and the TLS layer's errors in a user's words. */
export function describeNatsError(err: unknown): string {
  const e = err as { message?: string; code?: string; cause?: { message?: string; code?: string } };
  const inner = e.cause ?? e;
  if (inner instanceof BrokerError) return inner.message;
  if (/does not support 'tls'/.test(e.message ?? '')) return 'it does not offer TLS; refusing to use it';
  if (inner.code === 'ECONNREFUSED' || /connection refused/i.test(e.message ?? '')) return 'connection refused';
  if (/timeout/i.test(e.message ?? '')) return 'timed out';
  if (inner.code === 'CERT_HAS_EXPIRED') return 'its certificate has expired';
  if (
    inner.code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' ||
    inner.code === 'SELF_SIGNED_CERT_IN_CHAIN' ||
    inner.code === 'DEPTH_ZERO_SELF_SIGNED_CERT'
  ) {
    return "its certificate is not issued by this fleet's CA";
  }
  if (/authorization violation/i.test(e.message ?? ''))
    return 'the broker does not know this certificate (is it in the broker configuration? see distrun broker config)';
  return inner.message ?? e.message ?? String(err);
}
