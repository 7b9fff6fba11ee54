// The agent's transport: a mutual-TLS listener that admits clients holding a
// certificate of the fleet CA for client use, and hands each connection to a session.
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import * as tls from 'node:tls';
import type { Logger } from 'pino';
import { ConfigError, ErrorCodes } from '../errors.js';
import { encodeFailure } from '../protocol/messages.js';
import type { AgentConfig } from './config.js';
import { AgentSession, tokenDigest, type SessionSettings } from './session.js';

const CLIENT_AUTH_OID = '1.3.6.1.5.5.7.3.2';

export interface AgentServer {
  address: AddressInfo;
  /**
   * Stops listening, stops every running command (SIGTERM, then SIGKILL after the grace
   * period) and resolves when every session has closed.
   */
  close(): Promise<void>;
  /** Kills every running command's process group at once. */
  kill(): void;
}

interface TlsMaterial {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

function readMaterial(config: AgentConfig): { tls: TlsMaterial; tokenDigest: Buffer | undefined } {
  const read = (what: string, file: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new ConfigError(`cannot read ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
  };
  const material = { ca: read('CA certificate', config.ca), cert: read('certificate', config.cert), key: read('key', config.key) };
  let digest: Buffer | undefined;
  if (config.tokenFile) {
    // Trailing newlines are how editors save files, not part of the token.
    const token = read('token file', config.tokenFile).toString('utf8').replace(/[\r\n]+$/, '');
    if (token === '') throw new ConfigError(`token file ${config.tokenFile} is empty`);
    digest = tokenDigest(Buffer.from(token, 'utf8'));
  }
  return { tls: material, tokenDigest: digest };
}

export async function startAgentServer(config: AgentConfig, log: Logger, software: string): Promise<AgentServer> {
  const { tls: material, tokenDigest: digest } = readMaterial(config);
  try {
    // Validates the files up front, so a bad key is a configuration error, not a failed handshake.
    tls.createSecureContext(material);
  } catch (err) {
    throw new ConfigError(`cannot use the TLS files (${config.cert}, ${config.key}, ${config.ca}): ${(err as Error).message}`);
  }
  const settings: SessionSettings = {
    tokenDigest: digest,
    maxFrameBytes: config.maxFrameBytes,
    killGraceMs: config.killGraceSeconds * 1000,
    setupTimeoutMs: config.setupTimeoutSeconds * 1000,
    software,
  };
  const sessions = new Set<AgentSession>();
  let nextSessionId = 1;
  let closing = false;

  const server = tls.createServer({
    ...material,
    // Only the configured CA is trusted: an explicit `ca` replaces the system roots.
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.3',
    maxVersion: 'TLSv1.3',
    handshakeTimeout: 10_000,
  });

  server.on('secureConnection', (socket: tls.TLSSocket) => {
    const peer = `${socket.remoteAddress}:${socket.remotePort}`;
    const cert = socket.getPeerCertificate();
    const subject = cert?.subject?.CN ?? '';
    const sessionLog = log.child({ session: nextSessionId++, peer, client: subject });
    socket.setNoDelay(true);
    // OpenSSL already checks the purpose of client certificates; this makes the rule explicit.
    if (!cert?.ext_key_usage?.includes(CLIENT_AUTH_OID)) {
      sessionLog.warn('refused: certificate is not for client use');
      socket.end(encodeFailure({ code: ErrorCodes.AUTH, reason: 'certificate is not issued for client use' }));
      return;
    }
    if (closing) {
      socket.end(encodeFailure({ code: ErrorCodes.BUSY, reason: 'agent is shutting down' }));
      return;
    }
    if (sessions.size >= config.maxSessions) {
      sessionLog.warn({ maxSessions: config.maxSessions }, 'refused: too many sessions');
      socket.end(encodeFailure({ code: ErrorCodes.BUSY, reason: `agent is busy (${config.maxSessions} sessions running)` }));
      return;
    }
    sessionLog.info({ fingerprint: cert.fingerprint256 }, 'session start');
    const session = new AgentSession(socket, settings, sessionLog);
    sessions.add(session);
    socket.once('close', () => sessions.delete(session));
  });

  server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: tls.TLSSocket) => {
    log.warn({ peer: `${socket.remoteAddress}:${socket.remotePort}`, reason: err.code ?? err.message }, 'tls handshake failed');
  });

  await new Promise<void>((resolvePromise, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new ConfigError(`cannot listen on ${config.host}:${config.port}: ${err.code ?? err.message}`)));
    server.listen(config.port, config.host, () => resolvePromise());
  });
  server.on('error', (err) => log.error({ err: err.message }, 'server error'));

  return {
    address: server.address() as AddressInfo,
    close: () =>
      new Promise<void>((resolvePromise) => {
        closing = true;
        server.close(() => resolvePromise());
        for (const session of sessions) session.shutdown();
        setTimeout(() => {
          for (const session of sessions) session.kill();
        }, settings.killGraceMs + 1000).unref();
      }),
    kill: () => {
      for (const session of sessions) session.kill();
    },
  };
}
