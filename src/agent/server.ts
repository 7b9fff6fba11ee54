// The agent's transport: a mutual-TLS listener that admits clients holding a
// certificate of the fleet CA for client use, and hands each connection to a session.
import type { AddressInfo, Socket } from 'node:net';
import { constants } from 'node:crypto';
import * as tls from 'node:tls';
import type { Logger } from 'pino';
import { ConfigError, ErrorCodes, messageOf } from '../errors.js';
import { encodeFailure, type Failure } from '../protocol/messages.js';
import { TLS_SETTINGS } from '../protocol/tls-settings.js';
import { listenAddresses, type AgentConfig } from './config.js';
import { decideOnClientCertificate } from './client-certificate.js';
import { ConnectionGate, type GateLimits } from './connection-gate.js';
import { LogRateLimit } from './log-rate-limit.js';
import { isClientAllowed } from './policy.js';
import { CommandCgroups } from './command-cgroup.js';
import { OrphanReaper } from './orphan-reaper.js';
import { PendingMemory } from './pending-memory.js';
import { loadNativeSpawn } from './native-spawn.js';
import { PipePool, pipeBatchSize } from './pipe-pool.js';
import { loadRuntime, type AgentRuntime } from './runtime.js';
import { AgentSession, type PeerIdentity } from './session.js';
import { CarrierError, CarrierStream } from '../broker/carrier-stream.js';

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
  /** Whether each command runs in a cgroup of its own (commandCgroups, and possible here). */
  commandCgroups: boolean;
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

const gateLimits = (config: AgentConfig): GateLimits => ({ total: config.maxPendingConnections, perSource: config.maxPendingConnectionsPerSource });

/**
 * The TCP connection under a TLS socket. Node gives the TLS socket its address only while
 * it is open, and a failed handshake has closed it; the TCP socket keeps the address.
 */
function tcpSocketOf(socket: tls.TLSSocket): Socket | undefined {
  return (socket as unknown as { _parent?: Socket })._parent;
}

/**
 * The carrier a broker session's TLS socket runs on. Node keeps the duplex under a TLS
 * socket only internally (its stream wrap, `ssl._parent`); undefined when that is not
 * found, and the session is then refused (test/broker.test.ts checks it is found).
 */
function carrierOf(socket: tls.TLSSocket): CarrierStream | undefined {
  const wrap = (socket as unknown as { ssl?: { _parent?: Record<symbol, unknown> } }).ssl?._parent;
  if (!wrap) return undefined;
  for (const key of Object.getOwnPropertySymbols(wrap)) {
    const stream = (wrap[key] as { stream?: unknown } | undefined)?.stream;
    if (stream instanceof CarrierStream) return stream;
  }
  return undefined;
}

/** What a connection came over, as the gate counts it and logs name it. */
type Origin = Socket | CarrierStream | undefined;

function addressOf(origin: Origin): string {
  if (origin instanceof CarrierStream) return origin.remoteAddress;
  return `${origin?.remoteAddress ?? 'unknown'}:${origin?.remotePort ?? '?'}`;
}

/** The commands' cgroups, when asked for and possible; else why not, in the log. */
function openCommandCgroups(config: AgentConfig, log: Logger): CommandCgroups | undefined {
  if (!config.commandCgroups) return undefined;
  const opened = CommandCgroups.open();
  if (opened instanceof CommandCgroups) {
    log.info({ cgroup: opened.directory }, 'each command runs in a cgroup of its own');
    return opened;
  }
  log.warn({ reason: opened.unavailable }, 'commands cannot have cgroups of their own: they get their process group only');
  return undefined;
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
  const native = loadNativeSpawn();
  const spawner = 'spawn' in native ? native.spawn : undefined;
  let pipes: PipePool | undefined;
  if (!('unavailable' in native)) {
    log.info('commands are started without forking the agent (native spawn)');
  } else {
    log.info({ reason: native.unavailable }, 'commands are started by forking the agent (no native spawn)');
    pipes = new PipePool(pipeBatchSize(), (reason) => log.warn({ reason }, 'cannot make pipes for commands: their output goes through socketpairs'));
    // The first sessions get pipes too (a few milliseconds; without mkfifo, at once).
    await pipes.firstBatch;
  }
  const reaper = new OrphanReaper(config.killGraceSeconds, (reason) =>
    log.warn({ reason }, 'cannot guard against orphans: commands may outlive an agent that is killed'),
  );
  const memory = new PendingMemory(config.maxPendingBytes);
  const cgroups = openCommandCgroups(config, log);
  const helpers = { pipes, reaper, memory, cgroups, spawner };

  const gate = new ConnectionGate(gateLimits(config));
  // Lines a peer can cause before it has a session are limited (LogRateLimit).
  const peerLines = new LogRateLimit(log);

  // Every TCP connection is counted until it becomes a session (or closes); the oldest
  // is dropped when a bound is reached (connection-gate.ts).
  const onConnection = (tcp: Socket | CarrierStream): void => {
    const dropped = gate.admit(tcp);
    const msg = 'dropped a connection: too many not yet in a session';
    if (dropped && peerLines.allow(msg)) {
      const limit = dropped.bound === 'total' ? runtime.config.maxPendingConnections : runtime.config.maxPendingConnectionsPerSource;
      log.warn({ peer: addressOf(dropped.socket as Origin), source: dropped.source, bound: dropped.bound, limit }, msg);
    }
  };

  const onSecureConnection = (socket: tls.TLSSocket, originOf: (socket: tls.TLSSocket) => Origin): void => {
    const current = runtime;
    const tcp = originOf(socket);
    if (!tcp) {
      log.error('a session through the broker whose carrier cannot be found: refused');
      socket.destroy();
      return;
    }
    const peer = addressOf(tcp);
    const resumed = socket.isSessionReused();
    const sessionId = nextSessionId++;
    let sessionLog = log.child({ session: sessionId, peer });
    socket.setNoDelay(true);
    // Dead peers (a client machine that vanished) are noticed by the kernel.
    socket.setKeepAlive(true, 60_000);
    // A TLS error (a record that fails authentication) ends the connection at once. Node
    // does so for a TCP socket; over a broker's carrier it only reports the error, and
    // the session would notice at its next write.
    socket.on('error', () => socket.destroy());
    const refuse = (failure: Failure, message: string, fields: object = {}): void => {
      // A peer that resets the connection while the refusal is written must not crash the agent.
      socket.on('error', () => {});
      if (peerLines.allow(message)) sessionLog.warn({ code: failure.code, reason: failure.reason, resumed, ...fields }, message);
      socket.end(encodeFailure(failure));
      setTimeout(() => socket.destroy(), 5000).unref();
    };
    // Whoever is not a client of this fleet hears only that, whatever else is going on.
    const decision = decideOnClientCertificate(socket);
    if (!decision.accepted) return refuse({ code: ErrorCodes.AUTH, reason: decision.reason }, decision.logMessage, decision.fields);
    if (closing) return refuse({ code: ErrorCodes.BUSY, reason: 'agent is shutting down' }, 'refused: shutting down');
    const identity: PeerIdentity = { name: decision.name, serial: decision.serial, fingerprint: decision.fingerprint, peer };
    sessionLog = sessionLog.child({ client: identity.name });
    const serial = { serial: identity.serial };
    if (!isClientAllowed(current.config.allowedClients, identity.name)) {
      return refuse(
        { code: ErrorCodes.DENIED, reason: `client ${identity.name} is not allowed on this agent` },
        'refused: client not in allowedClients',
        serial,
      );
    }
    if (active >= current.config.maxSessions) {
      return refuse(
        { code: ErrorCodes.BUSY, reason: `agent is busy (${current.config.maxSessions} sessions running)` },
        'refused: too many sessions',
        { ...serial, maxSessions: current.config.maxSessions },
      );
    }
    const clientSessions = perClient.get(identity.name) ?? 0;
    if (clientSessions >= current.config.maxSessionsPerClient) {
      return refuse(
        { code: ErrorCodes.BUSY, reason: `too many sessions for client ${identity.name} (${current.config.maxSessionsPerClient})` },
        'refused: too many sessions for this client',
        { ...serial, maxSessionsPerClient: current.config.maxSessionsPerClient },
      );
    }
    // A session now: its own limits (maxSessions, per client) apply from here on.
    if (tcp) gate.release(tcp);
    sessionLog.info({ serial: identity.serial, fingerprint: identity.fingerprint, resumed }, 'session start');
    const session = new AgentSession({ transport: socket, runtime: current, identity, id: sessionId, log: sessionLog, software, helpers });
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

  const onTlsClientError = (
    err: NodeJS.ErrnoException & { reason?: string },
    socket: tls.TLSSocket,
    originOf: (socket: tls.TLSSocket) => Origin,
  ): void => {
    const msg = 'tls handshake failed';
    if (peerLines.allow(msg)) {
      // OpenSSL's reason when it has one ("wrong version number", "http request"), else Node's code.
      log.warn({ peer: addressOf(originOf(socket)), reason: err.reason ?? err.message, code: err.code }, msg);
    }
    // Through a broker the client hears why the agent gave up waiting (over TCP it sees the
    // connection close during the handshake).
    const origin = originOf(socket);
    if (origin instanceof CarrierStream && err.code === 'ERR_TLS_HANDSHAKE_TIMEOUT') {
      origin.destroy(
        new CarrierError(`the agent ended the TLS handshake: not complete within ${config.handshakeTimeoutSeconds} s (the client was too slow)`),
      );
    }
    // With a tlsClientError listener Node leaves the socket open (a handshake timeout
    // would otherwise hold the connection forever).
    socket.destroy();
  };

  /** `originOf`: how the server's TLS sockets find what they run on (a TCP socket, or a broker carrier). */
  const makeTlsServer = (originOf: (socket: tls.TLSSocket) => Origin): tls.Server => {
    const server = tls.createServer({
      ...tlsOptions(runtime),
      // Verification always runs; its result is decided on in client-certificate.ts (with
      // rejectUnauthorized Node would drop a failed client silently, losing the reason).
      requestCert: true,
      rejectUnauthorized: false,
      handshakeTimeout: config.handshakeTimeoutSeconds * 1000,
    });
    server.on('connection', onConnection);
    server.on('secureConnection', (socket: tls.TLSSocket) => onSecureConnection(socket, originOf));
    server.on('tlsClientError', (err: Error, socket: tls.TLSSocket) => onTlsClientError(err, socket, originOf));
    return server;
  };

  // One listener per configured address (like sshd's ListenAddress), all alike.
  const servers: tls.Server[] = [];
  for (const host of config.listen ? listenAddresses(config) : []) {
    const server = makeTlsServer(tcpSocketOf);
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

  // Sessions through the broker: the same TLS server's code, fed carriers instead of TCP
  // connections (it never listens). The NATS client is loaded only when it is used.
  const brokerListener = runtime.broker ? makeTlsServer(carrierOf) : undefined;
  // One set of session-ticket keys for both ways in: a client that resumed directly
  // resumes through the broker too, and the other way round.
  const shareTicketKeys = (): void => {
    if (brokerListener && servers[0]) brokerListener.setTicketKeys(servers[0].getTicketKeys());
  };
  shareTicketKeys();
  let broker: import('./broker-service.js').BrokerService | undefined;
  if (runtime.broker && brokerListener) {
    const { BrokerService, brokerLogin } = await import('./broker-service.js');
    const { urls, names, files } = runtime.broker;
    broker = new BrokerService({
      login: brokerLogin(files, urls, names),
      names,
      listener: brokerListener,
      // The client's name as its subject token has it: in lower case, as patterns are compared here.
      mayDiscover: (client) =>
        isClientAllowed(
          runtime.config.allowedClients.map((pattern) => pattern.toLowerCase()),
          client,
        ),
      log,
    });
    broker.start();
  }

  // While draining, the agent keeps listening so that newcomers hear why they are refused
  // (rather than a bare "connection refused"); it stops once its last session has closed.
  let onDrained: (() => void) | undefined;

  return {
    addresses: servers.map((server) => server.address() as AddressInfo),
    commandCgroups: cgroups !== undefined,
    reload: (next) => {
      const loaded = loadRuntime(next, log);
      try {
        for (const server of [...servers, ...(brokerListener ? [brokerListener] : [])]) server.setSecureContext(tlsOptions(loaded));
        shareTicketKeys();
      } catch (err) {
        throw new ConfigError(`cannot use the new TLS files: ${messageOf(err)}`);
      }
      runtime = loaded;
      memory.limit = loaded.config.maxPendingBytes;
      gate.setLimits(gateLimits(loaded.config));
    },
    close: () => {
      closing = true;
      pipes?.close();
      const { drainSeconds, killGraceSeconds } = runtime.config;
      // Sessions still setting up are refused now; running commands get the drain time.
      for (const session of sessions) session.refuseIfIdle();
      const stopAll = (): void => {
        for (const session of sessions) session.shutdown();
        setTimeout(
          () => {
            for (const session of sessions) session.kill();
          },
          killGraceSeconds * 1000 + 1000,
        ).unref();
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
          void broker?.close();
          reaper.close();
          peerLines.flush();
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
