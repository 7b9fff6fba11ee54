// The agent's transport: a mutual-TLS listener that admits clients holding a
// certificate of the fleet CA for client use, and hands each connection to a session.
import type { AddressInfo } from 'node:net';
import { constants } from 'node:crypto';
import * as tls from 'node:tls';
import type { Logger } from 'pino';
import { ConfigError, ErrorCodes, messageOf } from '../errors.js';
import { encodeFailure, type Failure } from '../protocol/messages.js';
import { TLS_SETTINGS } from '../protocol/tls-settings.js';
import { listenAddresses, type AgentConfig } from './config.js';
import { certificateNames, isClientAllowed } from './policy.js';
import { OrphanReaper } from './orphan-reaper.js';
import { PendingMemory } from './pending-memory.js';
import { PipePool, pipeBatchSize } from './pipe-pool.js';
import { loadRuntime, type AgentRuntime } from './runtime.js';
import { AgentSession, type ClientIdentity } from './session.js';

const CLIENT_AUTH_OID = '1.3.6.1.5.5.7.3.2';

export interface AgentServer {
  /** Where the agent listens, one entry per configured address. */
  addresses: AddressInfo[];
  /**
   * Re-reads configuration and files. On success new handshakes and sessions use them;
   * running sessions keep theirs. On any error the old state stays and the error is thrown.
   */
  reload(config: AgentConfig): void;
  /**
   * Stops listening, stops every running command (SIGTERM, then SIGKILL after the grace
   * period) and resolves when every session has closed.
   */
  close(): Promise<void>;
  /** Kills every running command's process group at once. */
  kill(): void;
}

function tlsOptions(runtime: AgentRuntime): tls.TlsOptions {
  const { tlsSessionSeconds } = runtime.config;
  return {
    // Only the configured CA is trusted: an explicit `ca` replaces the system roots.
    ...runtime.tls,
    ...TLS_SETTINGS,
    honorCipherOrder: true,
    // Session tickets are sealed with keys of this secure context: a reload (new CA, CRL
    // or certificate) makes every earlier ticket useless, so revocation is not bypassed.
    ...(tlsSessionSeconds > 0 ? { sessionTimeout: tlsSessionSeconds } : { secureOptions: constants.SSL_OP_NO_TICKET }),
  };
}

/** A resumed session skips OpenSSL's certificate checks: the validity period is checked here. */
function expiredOnResumption(socket: tls.TLSSocket, cert: tls.PeerCertificate): boolean {
  if (!socket.isSessionReused()) return false;
  const now = Date.now();
  return !(Date.parse(cert.valid_from) <= now && now <= Date.parse(cert.valid_to));
}

function identityOf(socket: tls.TLSSocket, cert: tls.PeerCertificate): ClientIdentity {
  const cn = cert.subject?.CN;
  const names = certificateNames(cert.subjectaltname, Array.isArray(cn) ? cn[0] : cn);
  return {
    name: names[0] ?? '',
    names,
    serial: (cert.serialNumber ?? '').toLowerCase(),
    fingerprint: cert.fingerprint256 ?? '',
    peer: `${socket.remoteAddress}:${socket.remotePort}`,
  };
}

export async function startAgentServer(config: AgentConfig, log: Logger, software: string): Promise<AgentServer> {
  let runtime = loadRuntime(config, log);
  // Sessions with an open connection (drain waits for them), and how many of them hold a
  // slot: a session that has ended and sent its last frame no longer does.
  const sessions = new Set<AgentSession>();
  let active = 0;
  const perClient = new Map<string, number>();
  let nextSessionId = 1;
  let closing = false;
  const pipes = new PipePool(pipeBatchSize(), (reason) => log.warn({ reason }, 'cannot make pipes for commands: their output goes through socketpairs'));
  // The first sessions get pipes too (a few milliseconds; without mkfifo, at once).
  await pipes.firstBatch;
  const reaper = new OrphanReaper(config.killGraceSeconds, (reason) =>
    log.warn({ reason }, 'cannot guard against orphans: commands may outlive an agent that is killed'));
  const memory = new PendingMemory(config.maxPendingBytes);
  const helpers = { pipes, reaper, memory };

  const onSecureConnection = (socket: tls.TLSSocket): void => {
    const current = runtime;
    const cert = socket.getPeerCertificate();
    const identity = identityOf(socket, cert);
    const sessionId = nextSessionId++;
    const sessionLog = log.child({ session: sessionId, peer: identity.peer, client: identity.name });
    socket.setNoDelay(true);
    // Dead peers (a client machine that vanished) are noticed by the kernel.
    socket.setKeepAlive(true, 60_000);
    const refuse = (failure: Failure, message: string, fields: object = {}): void => {
      sessionLog.warn({ code: failure.code, serial: identity.serial, ...fields }, message);
      socket.end(encodeFailure(failure));
      setTimeout(() => socket.destroy(), 5000).unref();
    };
    if (closing) return refuse({ code: ErrorCodes.BUSY, reason: 'agent is shutting down' }, 'refused: shutting down');
    // OpenSSL already checks the purpose of client certificates; this makes the rule explicit.
    if (!cert?.ext_key_usage?.includes(CLIENT_AUTH_OID)) {
      return refuse({ code: ErrorCodes.AUTH, reason: 'certificate is not issued for client use' }, 'refused: certificate is not for client use');
    }
    if (expiredOnResumption(socket, cert)) {
      return refuse({ code: ErrorCodes.AUTH, reason: 'client certificate has expired or is not valid yet' }, 'refused: certificate not valid now');
    }
    if (!isClientAllowed(current.config.allowedClients, identity.names)) {
      return refuse({ code: ErrorCodes.DENIED, reason: `client ${identity.name} is not allowed on this agent` }, 'refused: client not in allowedClients');
    }
    if (active >= current.config.maxSessions) {
      return refuse({ code: ErrorCodes.BUSY, reason: `agent is busy (${current.config.maxSessions} sessions running)` },
        'refused: too many sessions', { maxSessions: current.config.maxSessions });
    }
    const clientSessions = perClient.get(identity.name) ?? 0;
    if (clientSessions >= current.config.maxSessionsPerClient) {
      return refuse({ code: ErrorCodes.BUSY, reason: `too many sessions for client ${identity.name} (${current.config.maxSessionsPerClient})` },
        'refused: too many sessions for this client', { maxSessionsPerClient: current.config.maxSessionsPerClient });
    }
    sessionLog.info({ serial: identity.serial, fingerprint: identity.fingerprint, resumed: socket.isSessionReused() }, 'session start');
    const session = new AgentSession(socket, current, identity, sessionId, sessionLog, software, helpers);
    sessions.add(session);
    active += 1;
    perClient.set(identity.name, clientSessions + 1);
    session.once('released', () => {
      active -= 1;
      const left = (perClient.get(identity.name) ?? 1) - 1;
      if (left > 0) perClient.set(identity.name, left);
      else perClient.delete(identity.name);
    });
    socket.once('close', () => {
      sessions.delete(session);
      if (sessions.size === 0) onDrained?.();
    });
  };

  const onTlsClientError = (err: NodeJS.ErrnoException, socket: tls.TLSSocket): void => {
    log.warn({ peer: `${socket.remoteAddress}:${socket.remotePort}`, reason: err.code ?? err.message }, 'tls handshake failed');
    // With a tlsClientError listener Node leaves the socket open (a handshake timeout
    // would otherwise hold the connection forever).
    socket.destroy();
  };

  // One listener per configured address (like sshd's ListenAddress), all alike.
  const servers: tls.Server[] = [];
  for (const host of listenAddresses(config)) {
    const server = tls.createServer({
      ...tlsOptions(runtime),
      requestCert: true,
      rejectUnauthorized: true,
      handshakeTimeout: config.handshakeTimeoutSeconds * 1000,
    });
    server.on('secureConnection', onSecureConnection);
    server.on('tlsClientError', onTlsClientError);
    // Port 0 picks a free port once; every further address listens on the same one.
    const port = servers.length === 0 ? config.port : (servers[0]!.address() as AddressInfo).port;
    await new Promise<void>((resolvePromise, reject) => {
      const onListenError = (err: NodeJS.ErrnoException): void => {
        for (const open of servers) open.close();
        reject(new ConfigError(`cannot listen on ${host}:${port}: ${err.code ?? err.message}`));
      };
      server.once('error', onListenError);
      server.listen(port, host, () => {
        server.off('error', onListenError);
        resolvePromise();
      });
    });
    server.on('error', (err) => log.error({ err: err.message }, 'server error'));
    servers.push(server);
  }

  // While draining, the agent keeps listening so that newcomers hear why they are refused
  // (rather than a bare "connection refused"); it stops once its last session has closed.
  let onDrained: (() => void) | undefined;

  return {
    addresses: servers.map((server) => server.address() as AddressInfo),
    reload: (next) => {
      const loaded = loadRuntime(next, log);
      try {
        for (const server of servers) server.setSecureContext(tlsOptions(loaded));
      } catch (err) {
        throw new ConfigError(`cannot use the new TLS files: ${messageOf(err)}`);
      }
      runtime = loaded;
      memory.limit = loaded.config.maxPendingBytes;
    },
    close: () => {
      closing = true;
      pipes.close();
      const { drainSeconds, killGraceSeconds } = runtime.config;
      // Sessions still setting up are refused now; running commands get the drain time.
      for (const session of sessions) session.refuseIfIdle();
      const stopAll = (): void => {
        for (const session of sessions) session.shutdown();
        setTimeout(() => {
          for (const session of sessions) session.kill();
        }, killGraceSeconds * 1000 + 1000).unref();
      };
      let drainTimer: NodeJS.Timeout | undefined;
      if ([...sessions].some((s) => s.running)) {
        log.info({ sessions: sessions.size, drainSeconds }, 'draining');
        drainTimer = setTimeout(stopAll, drainSeconds * 1000);
      } else {
        stopAll();
      }
      return new Promise<void>((resolvePromise) => {
        onDrained = () => {
          onDrained = undefined;
          clearTimeout(drainTimer);
          for (const server of servers) server.close();
          reaper.close();
          resolvePromise();
        };
        if (sessions.size === 0) onDrained();
      });
    },
    kill: () => {
      for (const session of sessions) session.kill();
    },
  };
}
