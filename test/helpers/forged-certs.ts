// Certificates our `certs` command would never issue (expired, not yet valid, wrong or
// missing key usage), signed by a real PKI's CA, for attack tests.
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadIssuer, newKeyPair, randomSerial, signCertificate } from '../../src/pki/certificates.js';

export interface ForgedClient {
  commonName: string;
  dnsNames?: string[];
  notBefore?: Date;
  notAfter?: Date;
  /** Extended key usage: client auth (default), server auth, both, or no EKU extension at all. */
  usage?: 'client' | 'server' | 'both' | 'none';
}

/** Writes a client identity directory (ca.crt, client.crt, client.key) usable with `distrun --pki`. */
export function forgeClientIdentity(pkiDir: string, outDir: string, spec: ForgedClient): string {
  // Signed with the CA's own key, whatever its type, through the code that `certs` uses.
  const issuer = loadIssuer({
    certPem: readFileSync(join(pkiDir, 'ca.crt'), 'utf8'),
    keyPem: readFileSync(join(pkiDir, 'ca.key'), 'utf8'),
  });
  const { keyPem, publicKey } = newKeyPair();
  const usage = spec.usage ?? 'client';
  const certPem = signCertificate(issuer, {
    subject: [{ name: 'commonName', value: spec.commonName }],
    publicKey,
    serial: randomSerial(),
    notBefore: spec.notBefore ?? new Date(Date.now() - 3600_000),
    notAfter: spec.notAfter ?? new Date(Date.now() + 86400_000),
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true },
      ...(usage === 'none' ? [] : [{
        name: 'extKeyUsage',
        clientAuth: usage === 'client' || usage === 'both',
        serverAuth: usage === 'server' || usage === 'both',
      }]),
      ...(spec.dnsNames ? [{ name: 'subjectAltName', altNames: spec.dnsNames.map((value) => ({ type: 2, value })) }] : []),
    ],
  });
  mkdirSync(outDir, { recursive: true, mode: 0o700 });
  copyFileSync(join(pkiDir, 'ca.crt'), join(outDir, 'ca.crt'));
  writeFileSync(join(outDir, 'client.crt'), certPem);
  writeFileSync(join(outDir, 'client.key'), keyPem, { mode: 0o600 });
  return outDir;
}
