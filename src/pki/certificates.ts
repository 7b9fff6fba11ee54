// Certificate building: Node's native crypto makes the keys, node-forge assembles and
// signs the X.509 certificates. Pure: no file I/O.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import forge from 'node-forge';
import { UsageError } from '../errors.js';

export type Role = 'agent' | 'client';

export interface KeyAndCert {
  certPem: string;
  keyPem: string;
}

export interface IssuedCertificate extends KeyAndCert {
  serial: string;
  notAfter: Date;
}

export interface CertificateRequest {
  commonName: string;
  role: Role;
  dnsNames?: string[];
  ipAddresses?: string[];
  days?: number;
}

export const CA_DAYS = 3650;
export const LEAF_DAYS = 825;
const CA_KEY_BITS = 3072;
const LEAF_KEY_BITS = 2048;
// Tolerate clocks a little behind the issuer's.
const BACKDATE_MS = 60 * 60 * 1000;

const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$/;

/** Names become certificate subjects and directory names: host-name characters only. */
export function checkName(name: string, what = 'name'): string {
  if (!NAME_PATTERN.test(name) || name.includes('..')) {
    throw new UsageError(`invalid ${what} ${JSON.stringify(name)}: use letters, digits, '.', '-' and '_' (like a host name)`);
  }
  return name;
}

export function checkIp(ip: string): string {
  if (isIP(ip) === 0) throw new UsageError(`invalid IP address ${JSON.stringify(ip)}`);
  return ip;
}

function newKeyPair(bits: number): { keyPem: string; publicKey: forge.pki.PublicKey; privateKey: forge.pki.rsa.PrivateKey } {
  const { privateKey } = generateKeyPairSync('rsa', {
    modulusLength: bits,
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  const forgeKey = forge.pki.privateKeyFromPem(privateKey) as forge.pki.rsa.PrivateKey;
  return {
    keyPem: privateKey,
    privateKey: forgeKey,
    publicKey: forge.pki.setRsaPublicKey(forgeKey.n, forgeKey.e),
  };
}

/**
 * 16 random bytes whose top bits are 01: positive in DER (high bit clear) and never a
 * leading zero byte, which forge would encode as-is (illegal padding in strict DER), so
 * the serial is always 32 hex digits and reads the same here as in `openssl x509 -serial`.
 */
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x3f) | 0x40;
  return bytes.toString('hex');
}

function validity(cert: forge.pki.Certificate, days: number): void {
  const now = Date.now();
  cert.validity.notBefore = new Date(now - BACKDATE_MS);
  cert.validity.notAfter = new Date(now + days * 24 * 60 * 60 * 1000);
}

/** A self-signed CA certificate and its key. */
export function createCa(commonName: string): KeyAndCert {
  const { keyPem, publicKey, privateKey } = newKeyPair(CA_KEY_BITS);
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  cert.serialNumber = randomSerial();
  validity(cert, CA_DAYS);
  const subject = [{ name: 'commonName', value: commonName }, { name: 'organizationName', value: 'DistRunner' }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(privateKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem };
}

/** A leaf certificate for agent (server) or client use, signed by the CA. */
export function issueCertificate(ca: KeyAndCert, request: CertificateRequest): IssuedCertificate {
  checkName(request.commonName, 'name');
  const days = request.days ?? LEAF_DAYS;
  if (!Number.isInteger(days) || days < 1 || days > CA_DAYS) {
    throw new UsageError(`invalid validity ${JSON.stringify(request.days)}: use a whole number of days from 1 to ${CA_DAYS}`);
  }
  const dnsNames = (request.dnsNames ?? []).map((n) => checkName(n, 'DNS name'));
  const ipAddresses = (request.ipAddresses ?? []).map(checkIp);
  let caCert: forge.pki.Certificate;
  let caKey: forge.pki.rsa.PrivateKey;
  try {
    caCert = forge.pki.certificateFromPem(ca.certPem);
    caKey = forge.pki.privateKeyFromPem(ca.keyPem) as forge.pki.rsa.PrivateKey;
  } catch (err) {
    throw new UsageError(`cannot read the CA certificate or key: ${(err as Error).message}`);
  }
  const { keyPem, publicKey } = newKeyPair(LEAF_KEY_BITS);
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  const serial = randomSerial();
  cert.serialNumber = serial;
  validity(cert, days);
  cert.setSubject([
    { name: 'commonName', value: request.commonName },
    { name: 'organizationName', value: 'DistRunner' },
    { name: 'organizationalUnitName', value: request.role },
  ]);
  cert.setIssuer(caCert.subject.attributes);
  const altNames = [
    ...dnsNames.map((value) => ({ type: 2, value })),
    ...ipAddresses.map((ip) => ({ type: 7, ip })),
  ];
  const caKeyId = caCert.generateSubjectKeyIdentifier().getBytes();
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    request.role === 'agent' ? { name: 'extKeyUsage', serverAuth: true } : { name: 'extKeyUsage', clientAuth: true },
    ...(altNames.length > 0 ? [{ name: 'subjectAltName', altNames }] : []),
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: caKeyId },
  ]);
  cert.sign(caKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem, serial, notAfter: cert.validity.notAfter };
}

export interface RevokedEntry {
  serial: string;
  revokedAt: Date;
}

const OID_CRL_NUMBER = '2.5.29.20';
const OID_AUTHORITY_KEY_ID = '2.5.29.35';

/**
 * A v2 CRL signed by the CA (node-forge has no CRL support, so it is assembled from
 * ASN.1 here: RFC 5280 section 5). nextUpdate is the CA's own expiry, so the list
 * never goes stale before the CA does; publish a new one after every revocation.
 */
export function createCrl(ca: KeyAndCert, revoked: readonly RevokedEntry[], crlNumber: number): string {
  const { asn1 } = forge;
  const { Class, Type } = asn1;
  const caCert = forge.pki.certificateFromPem(ca.certPem);
  const caKey = forge.pki.privateKeyFromPem(ca.keyPem) as forge.pki.rsa.PrivateKey;
  const time = (date: Date) => (date.getUTCFullYear() < 2050
    ? asn1.create(Class.UNIVERSAL, Type.UTCTIME, false, asn1.dateToUtcTime(date))
    : asn1.create(Class.UNIVERSAL, Type.GENERALIZEDTIME, false, asn1.dateToGeneralizedTime(date)));
  const integer = (hex: string) => asn1.create(Class.UNIVERSAL, Type.INTEGER, false, forge.util.hexToBytes(hex.length % 2 ? `0${hex}` : hex));
  const algorithm = () => asn1.create(Class.UNIVERSAL, Type.SEQUENCE, true, [
    asn1.create(Class.UNIVERSAL, Type.OID, false, asn1.oidToDer(forge.pki.oids.sha256WithRSAEncryption!).getBytes()),
    asn1.create(Class.UNIVERSAL, Type.NULL, false, ''),
  ]);
  const extension = (oid: string, value: forge.asn1.Asn1) => asn1.create(Class.UNIVERSAL, Type.SEQUENCE, true, [
    asn1.create(Class.UNIVERSAL, Type.OID, false, asn1.oidToDer(oid).getBytes()),
    asn1.create(Class.UNIVERSAL, Type.OCTETSTRING, false, asn1.toDer(value).getBytes()),
  ]);
  const keyId = caCert.generateSubjectKeyIdentifier().getBytes();
  const tbs = asn1.create(Class.UNIVERSAL, Type.SEQUENCE, true, [
    asn1.create(Class.UNIVERSAL, Type.INTEGER, false, asn1.integerToDer(1).getBytes()), // v2
    algorithm(),
    forge.pki.distinguishedNameToAsn1(caCert.subject),
    time(new Date(Date.now() - BACKDATE_MS)),
    time(caCert.validity.notAfter),
    ...(revoked.length > 0
      ? [asn1.create(Class.UNIVERSAL, Type.SEQUENCE, true, revoked.map((entry) =>
        asn1.create(Class.UNIVERSAL, Type.SEQUENCE, true, [integer(entry.serial), time(entry.revokedAt)])))]
      : []),
    asn1.create(Class.CONTEXT_SPECIFIC, 0, true, [asn1.create(Class.UNIVERSAL, Type.SEQUENCE, true, [
      extension(OID_CRL_NUMBER, asn1.create(Class.UNIVERSAL, Type.INTEGER, false, asn1.integerToDer(crlNumber).getBytes())),
      extension(OID_AUTHORITY_KEY_ID, asn1.create(Class.UNIVERSAL, Type.SEQUENCE, true, [
        asn1.create(Class.CONTEXT_SPECIFIC, 0, false, keyId),
      ])),
    ])]),
  ]);
  const digest = forge.md.sha256.create();
  digest.update(asn1.toDer(tbs).getBytes());
  const signature = caKey.sign(digest);
  const crl = asn1.create(Class.UNIVERSAL, Type.SEQUENCE, true, [
    tbs,
    algorithm(),
    asn1.create(Class.UNIVERSAL, Type.BITSTRING, false, `\0${signature}`),
  ]);
  return forge.pem.encode({ type: 'X509 CRL', body: asn1.toDer(crl).getBytes() });
}
