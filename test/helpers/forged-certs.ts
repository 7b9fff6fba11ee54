// Certificates our `certs` command would never issue (expired, not yet valid, wrong or
// missing key usage), signed by a real PKI's CA, for attack tests.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import forge from 'node-forge';

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
  const caCert = forge.pki.certificateFromPem(readFileSync(join(pkiDir, 'ca.crt'), 'utf8'));
  const caKey = forge.pki.privateKeyFromPem(readFileSync(join(pkiDir, 'ca.key'), 'utf8')) as forge.pki.rsa.PrivateKey;
  const { privateKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  const key = forge.pki.privateKeyFromPem(privateKey) as forge.pki.rsa.PrivateKey;
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.setRsaPublicKey(key.n, key.e);
  const serial = randomBytes(16);
  serial[0] = serial[0]! & 0x7f;
  cert.serialNumber = serial.toString('hex');
  cert.validity.notBefore = spec.notBefore ?? new Date(Date.now() - 3600_000);
  cert.validity.notAfter = spec.notAfter ?? new Date(Date.now() + 86400_000);
  cert.setSubject([{ name: 'commonName', value: spec.commonName }]);
  cert.setIssuer(caCert.subject.attributes);
  const usage = spec.usage ?? 'client';
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
    ...(usage === 'none' ? [] : [{
      name: 'extKeyUsage',
      clientAuth: usage === 'client' || usage === 'both',
      serverAuth: usage === 'server' || usage === 'both',
    }]),
    ...(spec.dnsNames ? [{ name: 'subjectAltName', altNames: spec.dnsNames.map((value) => ({ type: 2, value })) }] : []),
  ]);
  cert.sign(caKey, forge.md.sha256.create());
  mkdirSync(outDir, { recursive: true, mode: 0o700 });
  copyFileSync(join(pkiDir, 'ca.crt'), join(outDir, 'ca.crt'));
  writeFileSync(join(outDir, 'client.crt'), forge.pki.certificateToPem(cert));
  writeFileSync(join(outDir, 'client.key'), privateKey, { mode: 0o600 });
  return outDir;
}
