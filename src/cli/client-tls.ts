// The client's side of TLS for a run: one secure context for every host (keys parsed
// once, only our CA trusted) and the session tickets that earlier runs left behind.
import { join } from 'node:path';
import * as tls from 'node:tls';
import { ErrorCodes, PkiError } from '../errors.js';
import { loadClientIdentity } from '../pki/pki-paths.js';
import { TLS_SETTINGS } from '../protocol/tls-settings.js';
import { distrunCacheDir } from './cache-dir.js';
import { HostSession, type RunRequest, type SessionLimits } from './host-session.js';
import type { Target } from './inventory.js';
import { TlsSessionCache } from './tls-session-cache.js';

export interface ClientTls {
  context: tls.SecureContext;
  sessions: TlsSessionCache;
}

export function loadClientTls(pkiDir: string, env: NodeJS.ProcessEnv = process.env): ClientTls {
  const identity = loadClientIdentity(pkiDir);
  let context: tls.SecureContext;
  try {
    context = tls.createSecureContext({ ...identity, ...TLS_SETTINGS });
  } catch (err) {
    throw new PkiError(`cannot use the client identity in ${pkiDir}: ${(err as Error).message}`);
  }
  const sessions = env.DISTRUN_TLS_CACHE === 'off'
    ? TlsSessionCache.disabled()
    : TlsSessionCache.open(join(distrunCacheDir(env), 'tls'), identity.cert);
  return { context, sessions };
}

/** Makes the run's host sessions: each resumes from the cache and leaves its new ticket there. */
export function hostSessionFactory(request: RunRequest, client: ClientTls, limits: SessionLimits): (target: Target) => HostSession {
  return (target) => {
    const { address, port } = target;
    const session = new HostSession(target, request, client.context, limits, client.sessions.ticketFor(address, port));
    session.on('tls-session', (ticket) => client.sessions.remember(address, port, ticket));
    session.once('done', ({ outcome }) => {
      if (outcome.kind === 'error' && outcome.code === ErrorCodes.TLS) client.sessions.forget(address, port);
    });
    return session;
  };
}

/** Keeps the run's tickets for the next run; a cache that cannot be written only costs time. */
export function saveTlsSessions(client: ClientTls): void {
  try {
    client.sessions.save();
  } catch {
    // Nothing lost but the speed-up.
  }
}
