// Certificates our `certs` command would never issue (expired, not yet valid, wrong or
// missing key usage), signed by a real PKI's CA, for attack tests.
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type forge from 'node-forge';
import { createCrl, loadIssuer, newKeyPair, randomSerial, signCertificate } from '../../src/pki/certificates.js';

export interface ForgedClient {
  commonName: string;
  dnsNames?: string[];
  notBefore?: Date;
  notAfter?: Date;
  /** Extended key usage: client auth (default), server auth, both, or no EKU extension at all. */
  usage?: 'client' | 'server' | 'both' | 'none';
  /** The whole subject instead of CN=commonName (e.g. two CNs). */
  subject?: forge.pki.CertificateField[];
  /** An RSA key of this many bits instead of the fleet's P-256 key. */
  rsaBits?: number;
}

function keyPair(rsaBits: number | undefined): { keyPem: string; publicKey: Buffer } {
  if (rsaBits === undefined) return newKeyPair();
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: rsaBits,
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'der' },
  });
  return { keyPem: privateKey, publicKey };
}

const caOf = (pkiDir: string) => ({
  certPem: readFileSync(join(pkiDir, 'ca.crt'), 'utf8'),
  keyPem: readFileSync(join(pkiDir, 'ca.key'), 'utf8'),
});

/** A certificate and key for `spec`, signed by the CA of `pkiDir`. */
function forgeCertificate(pkiDir: string, spec: ForgedClient, defaultUsage: 'client' | 'server', ip?: string): { certPem: string; keyPem: string } {
  // Signed with the CA's own key, whatever its type, through the code that `certs` uses.
  const issuer = loadIssuer(caOf(pkiDir));
  const { keyPem, publicKey } = keyPair(spec.rsaBits);
  const usage = spec.usage ?? defaultUsage;
  const altNames = [...(spec.dnsNames ?? []).map((value) => ({ type: 2, value })), ...(ip ? [{ type: 7, ip }] : [])];
  const certPem = signCertificate(issuer, {
    subject: spec.subject ?? [{ name: 'commonName', value: spec.commonName }],
    publicKey,
    serial: randomSerial(),
    notBefore: spec.notBefore ?? new Date(Date.now() - 3600_000),
    notAfter: spec.notAfter ?? new Date(Date.now() + 86400_000),
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true },
      ...(usage === 'none'
        ? []
        : [
            {
              name: 'extKeyUsage',
              clientAuth: usage === 'client' || usage === 'both',
              serverAuth: usage === 'server' || usage === 'both',
            },
          ]),
      ...(altNames.length > 0 ? [{ name: 'subjectAltName', altNames }] : []),
    ],
  });
  return { certPem, keyPem };
}

/** Writes a client identity directory (ca.crt, client.crt, client.key) usable with `distrun --pki`. */
export function forgeClientIdentity(pkiDir: string, outDir: string, spec: ForgedClient): string {
  const { certPem, keyPem } = forgeCertificate(pkiDir, spec, 'client');
  mkdirSync(outDir, { recursive: true, mode: 0o700 });
  copyFileSync(join(pkiDir, 'ca.crt'), join(outDir, 'ca.crt'));
  writeFileSync(join(outDir, 'client.crt'), certPem);
  writeFileSync(join(outDir, 'client.key'), keyPem, { mode: 0o600 });
  return outDir;
}

/** Writes an agent bundle (ca.crt, agent.crt, agent.key) for 127.0.0.1, for `startAgent`'s --cert/--key. */
export function forgeAgentBundle(pkiDir: string, outDir: string, spec: ForgedClient): { cert: string; key: string } {
  const { certPem, keyPem } = forgeCertificate(pkiDir, spec, 'server', '127.0.0.1');
  mkdirSync(outDir, { recursive: true, mode: 0o700 });
  const cert = join(outDir, 'agent.crt');
  const key = join(outDir, 'agent.key');
  writeFileSync(cert, certPem);
  writeFileSync(key, keyPem, { mode: 0o600 });
  return { cert, key };
}

/** A CRL of the CA of `pkiDir` revoking `serials`, with the given validity period. */
export function forgeCrl(pkiDir: string, serials: string[], times: { thisUpdate: Date; nextUpdate: Date }): string {
  return createCrl(
    caOf(pkiDir),
    serials.map((serial) => ({ serial, revokedAt: times.thisUpdate })),
    1,
    times,
  );
}

/**
 * A P-256 identity signed by the CA of `pkiDir` with ECDSA-SHA1 (the `openssl` command;
 * our own code only signs with SHA-256): client.crt/client.key, or agent.crt/agent.key
 * for 127.0.0.1, with ca.crt. Returns the directory.
 */
export function forgeSha1Identity(pkiDir: string, outDir: string, role: 'client' | 'agent'): string {
  mkdirSync(outDir, { recursive: true, mode: 0o700 });
  const name = role === 'client' ? 'client' : 'agent';
  const key = join(outDir, `${name}.key`);
  const ext = join(outDir, 'ext.cnf');
  writeFileSync(
    ext,
    role === 'client'
      ? 'keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n'
      : 'keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n',
  );
  const openssl = (args: string[]): void => {
    const r = spawnSync('openssl', args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr}`);
  };
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key]);
  openssl(['req', '-new', '-key', key, '-subj', `/CN=${role === 'client' ? 'sha1' : 'agent1'}`, '-out', join(outDir, 'req.csr')]);
  openssl([
    'x509',
    '-req',
    '-sha1',
    '-days',
    '2',
    '-in',
    join(outDir, 'req.csr'),
    '-CA',
    join(pkiDir, 'ca.crt'),
    '-CAkey',
    join(pkiDir, 'ca.key'),
    '-set_serial',
    `0x${randomSerial()}`,
    '-extfile',
    ext,
    '-out',
    join(outDir, `${name}.crt`),
  ]);
  copyFileSync(join(pkiDir, 'ca.crt'), join(outDir, 'ca.crt'));
  return outDir;
}
