// What distrun requires of an agent's certificate beyond OpenSSL's verification (chain
// to the fleet CA, validity, the CRL, security level 2) and Node's name check: checked
// once the handshake is done, before a byte of the request (token, stdin) is sent.
//
// A resumed TLS session skips certificate verification, and on the client Node does not
// even show the certificate the session was made with. So what matters about it (serial,
// validity) is kept with each session ticket, and a resumed session is checked from that
// record against the CRL that is in the PKI directory now and against the clock.
import type { TLSSocket } from 'node:tls';
import { normalizeSerial } from '../../pki/crl.js';
import { weakCertificateProblem } from '../../pki/key-strength.js';
import { otherRoleProblem } from '../../pki/certificate-role.js';
import { Oids } from '../../pki/x509-fields.js';

export interface AgentTrust {
  /** The CRL that was loaded (PKI_DIR/crl.pem), for messages; undefined without one. */
  crlFile: string | undefined;
  revoked: ReadonlySet<string>;
}

/** What a session ticket remembers of the agent certificate its session was made with. */
export interface AgentCertificateRecord {
  serial: string;
  /** Validity period, milliseconds since the epoch. */
  notBefore: number;
  notAfter: number;
}

type AgentCheck = { record: AgentCertificateRecord; problem?: undefined } | { record?: undefined; problem: string };

const refusing = (what: string): AgentCheck => ({ problem: `agent certificate ${what}; refusing to talk to it` });

/** The revocation message, naming the file that says so. */
export function revokedMessage(trust: AgentTrust): string {
  return `agent certificate has been revoked (${trust.crlFile ? `listed in ${trust.crlFile}` : 'CRL'}); refusing to talk to it`;
}

function checkRecord(record: AgentCertificateRecord, trust: AgentTrust, now: number): AgentCheck {
  if (trust.revoked.has(record.serial)) return { problem: revokedMessage(trust) };
  if (!(record.notBefore <= now && now <= record.notAfter)) return refusing('has expired or is not valid yet');
  return { record };
}

/**
 * The agent certificate's record, or why this agent must not be talked to. `resumedFrom`
 * is the record kept with the ticket this connection offered.
 */
export function checkAgentCertificate(
  socket: TLSSocket,
  trust: AgentTrust,
  resumedFrom: AgentCertificateRecord | undefined,
  now = Date.now(),
): AgentCheck {
  if (socket.isSessionReused()) {
    return resumedFrom ? checkRecord(resumedFrom, trust, now) : refusing('is unknown (a resumed session without a record)');
  }
  const cert = socket.getPeerX509Certificate();
  if (!cert) return { problem: 'agent presented no certificate; refusing to talk to it' };
  // OpenSSL takes a certificate without extended key usage as good for every purpose.
  if (!cert.keyUsage?.includes(Oids.SERVER_AUTH)) return refusing('is not issued for agent (server) use');
  const role = otherRoleProblem(cert.raw, 'agent');
  if (role) return refusing(role);
  const weak = weakCertificateProblem(cert);
  if (weak) return refusing(`is too weak: ${weak}`);
  return checkRecord(
    {
      serial: normalizeSerial(cert.serialNumber),
      notBefore: Date.parse(cert.validFrom),
      notAfter: Date.parse(cert.validTo),
    },
    trust,
    now,
  );
}
