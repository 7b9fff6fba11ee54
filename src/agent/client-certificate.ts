// The agent's decision on a client's certificate, made once the TLS handshake is done
// and before a single protocol byte is read. The listener does not let Node drop failed
// verifications silently (that loses the reason); every check is here instead, and each
// refusal has a reason for the client and a line for the log. Nothing here can be
// turned off.
import type { TLSSocket } from 'node:tls';
import { otherRoleProblem } from '../pki/certificate-role.js';
import { clientNameOf } from '../pki/client-name.js';
import { normalizeSerial } from '../pki/crl.js';
import { weakCertificateProblem } from '../pki/key-strength.js';
import { verifyFailure } from '../pki/verify-failures.js';
import { Oids } from '../pki/x509-fields.js';

type CertificateDecision =
  | { accepted: true; name: string; serial: string; fingerprint: string }
  | { accepted: false; reason: string; logMessage: string; fields: Record<string, unknown> };

/** OpenSSL's own text for a failed verification: Node names only some results (others are UNSPECIFIED). */
function opensslText(socket: TLSSocket): string | undefined {
  // Node keeps it on its internal handle only; the code alone is the public API.
  const handle = (socket as unknown as { _handle?: { verifyError?: () => Error | null } })._handle;
  try {
    return handle?.verifyError?.()?.message;
  } catch {
    return undefined;
  }
}

export function decideOnClientCertificate(socket: TLSSocket, now = Date.now()): CertificateDecision {
  const refuse = (reason: string, logMessage: string, fields: Record<string, unknown> = {}): CertificateDecision => ({
    accepted: false,
    reason,
    logMessage,
    fields,
  });
  // Also on a resumed session: OpenSSL takes a session without a client certificate as
  // verified, so "no certificate" must be caught here, not left to socket.authorized.
  const cert = socket.getPeerX509Certificate();
  if (!cert) return refuse("no client certificate: this agent requires one issued by the fleet's CA", 'refused: no client certificate');
  const serial = normalizeSerial(cert.serialNumber);
  const weak = weakCertificateProblem(cert);
  if (weak) return refuse(`client certificate is too weak: ${weak}`, 'refused: client certificate too weak', { serial });
  // The verification result travels in the session: a ticket from a refused handshake is refused again.
  if (!socket.authorized) {
    const code = String(socket.authorizationError ?? 'UNSPECIFIED');
    const openssl = opensslText(socket);
    return refuse(`client certificate ${verifyFailure(code, openssl, 'client use')}`, 'refused: client certificate not accepted', {
      serial,
      verifyError: code,
      openssl,
    });
  }
  // OpenSSL accepts a certificate without any extended key usage for every purpose.
  if (!cert.keyUsage?.includes(Oids.CLIENT_AUTH)) {
    return refuse('client certificate is not issued for client use', 'refused: certificate is not for client use', { serial });
  }
  const role = otherRoleProblem(cert.raw, 'client');
  if (role) return refuse(`client certificate ${role}`, 'refused: certificate of another role', { serial });
  // A resumed session skips OpenSSL's checks, so the validity period is checked here.
  if (socket.isSessionReused() && !(Date.parse(cert.validFrom) <= now && now <= Date.parse(cert.validTo))) {
    return refuse('client certificate has expired or is not valid yet', 'refused: certificate not valid now', { serial });
  }
  const named = clientNameOf(cert.raw);
  if (named.problem !== undefined) {
    return refuse(`client certificate ${named.problem}`, 'refused: certificate names no single client', { serial });
  }
  return { accepted: true, name: named.name, serial, fingerprint: cert.fingerprint256 };
}
