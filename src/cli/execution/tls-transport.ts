// The direct transport: one mutual-TLS connection to the agent's address and port. The
// agent's certificate is checked (name, CA, CRL, key strength) before `ready`, so nothing
// (not the token, not stdin) is sent to an agent that has not passed.
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import * as tls from 'node:tls';
import { ErrorCodes, RemoteError } from '../../errors.js';
import { TLS_SETTINGS } from '../../protocol/tls-settings.js';
import { checkAgentCertificate, type AgentCertificateRecord, type AgentTrust } from './agent-certificate.js';
import { describeConnectionError } from './connection-errors.js';
import type { TlsSessionTicket } from './tls-ticket-cache.js';
import type { ConnectionProblem, Transport, TransportHandlers } from './transport.js';

/** TLS resumption: a ticket from an earlier connection to this agent, and where new ones go. */
interface SessionTickets {
  earlier: TlsSessionTicket | undefined;
  /** A ticket from the agent: a later connection may resume with it. */
  remember(ticket: TlsSessionTicket): void;
}

export interface TlsTransportOptions {
  address: string;
  port: number;
  /**
   * The byte stream to run TLS on instead of a TCP connection to address:port (a broker
   * carrier, broker-transport.ts). The agent is checked by `address` all the same.
   */
  stream?: () => Duplex;
  context: tls.SecureContext;
  trust: AgentTrust;
  tickets?: SessionTickets;
}

export class TlsTransport implements Transport {
  private socket: tls.TLSSocket | undefined;
  protected tcpConnected = false;
  protected verified = false;
  /** The agent certificate's record, once it passed (kept with the session's tickets). */
  private agentCertificate: AgentCertificateRecord | undefined;

  constructor(protected readonly options: TlsTransportOptions) {}

  open(handlers: TransportHandlers): void {
    const { address, port, context, trust, tickets, stream } = this.options;
    const socket = tls.connect({
      ...(stream ? { socket: stream() } : { host: address, port }),
      secureContext: context,
      session: tickets?.earlier?.ticket,
      // SNI takes names only; the certificate check below still covers IP addresses.
      servername: isIP(address) ? undefined : address,
      ...TLS_SETTINGS,
      rejectUnauthorized: true,
    });
    this.socket = socket;
    socket.setNoDelay(true);
    socket.once('connect', () => {
      this.tcpConnected = true;
    });
    // Node emits tickets only after 'secureConnect', so the agent's record is known by then.
    socket.on('session', (ticket: Buffer) => {
      if (this.agentCertificate) tickets?.remember({ ticket, agent: this.agentCertificate });
    });
    socket.once('secureConnect', () => {
      const check = checkAgentCertificate(socket, trust, tickets?.earlier?.agent);
      if (check.problem !== undefined) {
        handlers.failed(new RemoteError(ErrorCodes.TLS, check.problem));
        socket.destroy();
        return;
      }
      this.verified = true;
      this.agentCertificate = check.record;
      handlers.ready({ certificateExpires: new Date(check.record.notAfter) });
    });
    socket.on('data', (chunk: Buffer) => handlers.data(chunk));
    socket.on('error', (err) => handlers.failed(err));
    socket.on('drain', () => handlers.drain());
    socket.on('close', () => handlers.closed());
  }

  // Corked: the parts go to TLS together (one record where they fit), without being copied into one buffer.
  write(...parts: Buffer[]): boolean {
    const socket = this.socket;
    if (!socket) return false;
    let flowing = true;
    socket.cork();
    for (const part of parts) flowing = socket.write(part);
    socket.uncork();
    return flowing;
  }

  pause(): void {
    this.socket?.pause();
  }

  resume(): void {
    this.socket?.resume();
  }

  destroy(): void {
    this.socket?.destroy();
  }

  describeFailure(err: Error, agentAnswered: boolean): ConnectionProblem {
    return describeConnectionError(err, agentAnswered, this.options.trust, this.options.port);
  }

  // "No TCP connection" and "something listens but does not answer" differ.
  describeSilence(limit: string): ConnectionProblem {
    if (!this.tcpConnected) return { code: ErrorCodes.CONNECT, message: `connect timed out after ${limit}` };
    if (!this.verified) {
      return {
        code: ErrorCodes.HANDSHAKE_TIMEOUT,
        message: `TCP connected but the TLS handshake did not complete within ${limit} (is the service on port ${this.options.port} a DistRunner agent?)`,
      };
    }
    return { code: ErrorCodes.HANDSHAKE_TIMEOUT, message: `TLS connected but the agent did not answer within ${limit}` };
  }
}
