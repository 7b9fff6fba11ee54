// The client's side of every session (run and ping alike): one TLS secure context for
// every host (keys parsed once, only our CA trusted, the PKI directory's CRL checked), the
// session tickets that earlier runs left behind, and the token.
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { ErrorCodes, FileError, PkiError, UsageError, messageOf } from '../../errors.js';
import { clientNameOf } from '../../pki/client-name.js';
import { readCrl, type RevocationList } from '../../pki/crl.js';
import { weakCertificateInFile } from '../../pki/key-strength.js';
import { defaultPkiDir, loadClientIdentity, PkiFiles } from '../../pki/pki-paths.js';
import { tokenOf } from '../../token-file.js';
import { SOFTWARE_VERSION } from '../../version.js';
import { TLS_SETTINGS } from '../../protocol/tls-settings.js';
import { describeSystemError } from '../../system-errors.js';
import type { AgentTrust } from './agent-certificate.js';
import { distrunCacheDir } from '../cache-dir.js';
import { HostSession, type RunRequest, type SessionLimits } from './host-session.js';
import type { Session } from './session.js';
import { throughBroker } from '../targeting/host-label.js';
import type { Target } from '../targeting/model.js';
import { TlsTicketCache, type TlsSessionTicket } from './tls-ticket-cache.js';
import type { BrokerRun } from './broker-transport.js';
import type { NatsConnection } from '../../broker/broker-connection.js';
import { TlsTransport } from './tls-transport.js';

export interface ClientTls {
  /** The PKI files themselves (a broker login uses them too). */
  identity: { ca: Buffer; cert: Buffer; key: Buffer };
  context: tls.SecureContext;
  tickets: TlsTicketCache;
  trust: AgentTrust;
}

/**
 * PKI_DIR/crl.pem, where `distrun certs revoke` writes it (copy it next to a client
 * identity used elsewhere); absent: no certificate is known to be revoked. A CRL that is
 * there but cannot be used (expired, another CA's, bad signature) stops the run.
 */
function loadCrl(pkiDir: string, caPem: Buffer): { file: string; crl: RevocationList } | undefined {
  const file = join(pkiDir, PkiFiles.CRL);
  let text: string;
  try {
    text = readFileSync(file, 'latin1');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new PkiError(`cannot read the CRL ${file}: ${describeSystemError(err)}`);
  }
  try {
    return { file, crl: readCrl(text, caPem.toString('latin1')) };
  } catch (err) {
    throw new PkiError(`cannot use the CRL ${file}: ${messageOf(err)}`);
  }
}

function loadClientTls(pkiDir: string, env: NodeJS.ProcessEnv = process.env): ClientTls {
  const identity = loadClientIdentity(pkiDir);
  for (const [file, pem] of [
    [PkiFiles.CLIENT_CERT, identity.cert],
    [PkiFiles.CA_CERT, identity.ca],
  ] as const) {
    const weak = weakCertificateInFile(pem);
    if (weak) throw new PkiError(`${join(pkiDir, file)} is too weak: ${weak}`);
  }
  const revocation = loadCrl(pkiDir, identity.ca);
  let context: tls.SecureContext;
  try {
    context = tls.createSecureContext({ ...identity, ...TLS_SETTINGS, ...(revocation ? { crl: revocation.crl.pem } : {}) });
  } catch (err) {
    throw new PkiError(`cannot use the client identity in ${pkiDir}: ${(err as Error).message}`);
  }
  const tickets =
    env.DISTRUN_TLS_CACHE === 'off' ? TlsTicketCache.disabled() : TlsTicketCache.open(join(distrunCacheDir(env), 'tls'), identity.cert, identity.ca);
  return { identity, context, tickets, trust: { crlFile: revocation?.file, revoked: revocation?.crl.revoked ?? new Set() } };
}

/** Makes the run's host sessions: each resumes from the cache and leaves its new ticket there. */
export function hostSessionFactory(request: RunRequest, client: ClientTls, limits: SessionLimits, broker?: BrokerRun): (target: Target) => Session {
  return (target) => {
    // Through a broker an agent is addressed, and checked, by the host's name (which
    // `distrun certs agent NAME` puts in its certificate); directly, by the address dialled.
    const { port } = target;
    const brokered = throughBroker(target);
    if (brokered && !broker) throw new Error(`${target.name} is routed through a broker, and the run has none open`);
    const address = brokered ? target.name : target.address;
    const options = {
      address,
      port,
      context: client.context,
      trust: client.trust,
      tickets: {
        earlier: client.tickets.ticketFor(address, port),
        remember: (ticket: TlsSessionTicket) => client.tickets.remember(address, port, ticket),
      },
    };
    const transport = brokered ? broker!.transport(options) : new TlsTransport(options);
    const session = new HostSession(target, request, limits, transport);
    session.once('done', ({ outcome }) => {
      if (outcome.kind === 'error' && outcome.code === ErrorCodes.TLS) client.tickets.forget(address, port);
    });
    return session;
  };
}

/** Keeps the run's tickets for the next run; a cache that cannot be written only costs time. */
export function saveTlsTickets(client: ClientTls): void {
  try {
    client.tickets.save();
  } catch {
    // Nothing lost but the speed-up.
  }
}

/** The token file's contents without the trailing newline (--token-file, $DISTRUN_TOKEN_FILE). */
function readToken(file: string | undefined): Buffer | undefined {
  if (!file) return undefined;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new FileError(`cannot read token file ${file}: ${describeSystemError(err)}`);
  }
  const token = tokenOf(text);
  if (token === undefined) throw new UsageError(`token file ${file} is empty`);
  return Buffer.from(token, 'utf8');
}

/** A connection to the brokers as this client (the NATS client is loaded only here), and the client's name there. */
export async function connectToBrokers(
  urls: string[],
  opts: { connectTimeout: number },
  client: ClientTls,
): Promise<{ nc: NatsConnection; name: string }> {
  const named = clientNameOf(new X509Certificate(client.identity.cert).raw);
  if (named.problem !== undefined) throw new PkiError(`our client certificate ${named.problem}`);
  const { connectBroker } = await import('../../broker/broker-connection.js');
  const nc = await connectBroker(
    { ...client.identity, urls, name: `distrun ${named.name}` },
    { persistent: false, timeoutMs: opts.connectTimeout * 1000 },
  );
  return { nc, name: named.name };
}

/** The run's brokers (broker-route.ts), connected and subscribed; undefined when every host is reached directly. */
export async function openBroker(
  urls: string[] | undefined,
  opts: { connectTimeout: number },
  client: ClientTls,
  fanout: number,
): Promise<BrokerRun | undefined> {
  if (urls === undefined) return undefined;
  const [{ nc, name }, { BrokerRun: Run }] = await Promise.all([connectToBrokers(urls, opts, client), import('./broker-transport.js')]);
  return Run.open(nc, name, fanout);
}

/** How distrun names itself to agents. */
export const CLIENT_SOFTWARE = `distrun/${SOFTWARE_VERSION}`;

/** What every command that dials needs first, from --pki and --token-file. */
export function openClient(opts: { pki?: string; tokenFile?: string }): { tls: ClientTls; token: Buffer | undefined } {
  const client = loadClientTls(opts.pki ?? defaultPkiDir());
  return { tls: client, token: readToken(opts.tokenFile ?? process.env.DISTRUN_TOKEN_FILE) };
}
