// What a failed connection means to the user: socket and TLS errors in words, with the
// error code that classifies the host (unreachable, TLS refusal, ...).
import { DistRunError, ErrorCodes, type ErrorCode } from '../../errors.js';
import { isVerificationCode, verifyFailure } from '../../pki/verify-failures.js';
import { revokedMessage, type AgentTrust } from './agent-certificate.js';

const NOT_TLS = /wrong version number|packet length too long|unknown protocol|record layer failure/;

/** OpenSSL's reason ("wrong version number") from its error line ("...:SSL routines:func:REASON:file:line:"). */
function openSslReason(message: string): string {
  return /:SSL routines:[^:]*:([^:]+):/.exec(message)?.[1] ?? message.split('\n')[0]!.trim();
}

// OpenSSL and libuv error codes translated into what a person can act on.
const TLS_REFUSED_BY_AGENT: Record<string, string> = {
  ERR_SSL_TLSV1_ALERT_UNKNOWN_CA: 'the agent does not trust our client certificate (issued by another CA)',
  ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED: 'the agent requires a client certificate',
  ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE: 'the agent rejected our client certificate',
  ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED: 'the agent rejected our client certificate as expired',
  ERR_SSL_SSLV3_ALERT_CERTIFICATE_REVOKED: 'the agent rejected our client certificate as revoked',
  ERR_SSL_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE: 'the agent rejected our client certificate (wrong purpose)',
  ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION: 'the agent does not speak TLS 1.3',
  ERR_SSL_TLSV1_ALERT_DECRYPT_ERROR: 'TLS handshake failed (decrypt error)',
  ERR_SSL_SSLV3_ALERT_BAD_RECORD_MAC: 'the agent found data of this session altered on the way (TLS record authentication failed)',
};

const CONNECT_PROBLEMS: Record<string, string> = {
  ECONNREFUSED: 'connection refused (is distrunner-agent running?)',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ETIMEDOUT: 'connection timed out',
  ENOTFOUND: 'unknown host name',
  EAI_AGAIN: 'host name lookup failed (temporary)',
  EADDRNOTAVAIL: 'address not available',
};

export function describeConnectionError(
  err: NodeJS.ErrnoException,
  handshakeDone: boolean,
  trust?: AgentTrust,
  port?: number,
): { code: ErrorCode; message: string } {
  const code = err.code ?? '';
  // What OpenSSL says when the bytes that came back are not TLS at all (ssh, http, smtp...).
  if (!handshakeDone && NOT_TLS.test(err.message)) {
    return { code: ErrorCodes.TLS, message: `not a DistRunner agent (the service on port ${port ?? '?'} does not speak TLS)` };
  }
  if (CONNECT_PROBLEMS[code]) return { code: ErrorCodes.CONNECT, message: CONNECT_PROBLEMS[code]! };
  if (code === 'CERT_REVOKED' && trust) return { code: ErrorCodes.TLS, message: revokedMessage(trust) };
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return { code: ErrorCodes.TLS, message: 'agent certificate does not name the address we dialled; refusing to talk to it' };
  }
  if (isVerificationCode(code)) {
    return { code: ErrorCodes.TLS, message: `agent certificate ${verifyFailure(code, err.message, 'agent (server) use')}; refusing to talk to it` };
  }
  if (TLS_REFUSED_BY_AGENT[code]) return { code: ErrorCodes.TLS, message: TLS_REFUSED_BY_AGENT[code]! };
  if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_') || code === 'EPROTO') {
    return { code: ErrorCodes.TLS, message: `TLS error: ${openSslReason(err.message)}` };
  }
  if (code === 'ECONNRESET' || code === 'EPIPE') {
    return {
      code: handshakeDone ? ErrorCodes.DISCONNECTED : ErrorCodes.TLS,
      message: handshakeDone
        ? 'connection reset by the agent'
        : 'connection reset during the handshake (the agent may be dropping connections: too many not yet in a session)',
    };
  }
  if (err instanceof DistRunError) return { code: err.code, message: err.message };
  return { code: ErrorCodes.CONNECT, message: `${err.message}${code ? ` (${code})` : ''}` };
}
