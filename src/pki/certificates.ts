// Certificate building: Node's native crypto (OpenSSL) makes the keys and signs;
// node-forge only encodes the ASN.1 (its signing and key handling are RSA-only, in slow
// JavaScript). Pure: no file I/O.
import { createHash, createPrivateKey, generateKeyPairSync, randomBytes, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import forge from 'node-forge';
import { PkiError, UsageError } from '../errors.js';
import { isPlainName } from './names.js';

/** `broker`: a NATS server of the fleet (docs/security.md, "The broker"): server and route client, never a command client. */
export type Role = 'agent' | 'client' | 'broker';

export interface KeyAndCert {
  certPem: string;
  keyPem: string;
}

interface IssuedCertificate extends KeyAndCert {
  serial: string;
  notAfter: Date;
}

interface CertificateRequest {
  commonName: string;
  role: Role;
  dnsNames?: string[];
  ipAddresses?: string[];
  days?: number;
}

const EXTENDED_KEY_USAGE: Record<Role, { serverAuth?: true; clientAuth?: true }> = {
  // Client use so that an agent can log in to a broker; certificate-role.ts keeps it from standing for a client.
  agent: { serverAuth: true, clientAuth: true },
  client: { clientAuth: true },
  broker: { serverAuth: true, clientAuth: true },
};

const CA_DAYS = 3650;
const LEAF_DAYS = 825;
// ECDSA P-256 for every new key: generated in microseconds, and cheap in each TLS handshake.
const KEY_CURVE = 'prime256v1';
// Tolerate clocks a little behind the issuer's.
const BACKDATE_MS = 60 * 60 * 1000;

/** Names become certificate subjects and directory names: host-name characters only. */
export function checkName(name: string, what = 'name'): string {
  if (!isPlainName(name)) {
    throw new UsageError(`invalid ${what} ${JSON.stringify(name)}: use letters, digits, '.', '-' and '_' (like a host name)`);
  }
  return name;
}

export function checkIp(ip: string): string {
  if (isIP(ip) === 0) throw new UsageError(`invalid IP address ${JSON.stringify(ip)}`);
  return ip;
}

const { asn1 } = forge;
const { Class, Type } = asn1;
type Asn1 = forge.asn1.Asn1;

const OID_ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2';
const OID_SHA256_WITH_RSA = '1.2.840.113549.1.1.11';
const OID_SUBJECT_KEY_ID = '2.5.29.14';
const OID_AUTHORITY_KEY_ID = '2.5.29.35';
const OID_CRL_NUMBER = '2.5.29.20';

// node-forge functions, and an option, that its type definitions leave out.
const forgePki = forge.pki as typeof forge.pki & {
  certificateExtensionsToAsn1(extensions: unknown[]): Asn1;
  certificateExtensionToAsn1(extension: { id: string; value: Asn1 }): Asn1;
};
const forgeAsn1 = asn1 as unknown as { fromDer(bytes: string, options: { decodeBitStrings: boolean }): Asn1 };

/** Parses DER, leaving BIT STRINGs opaque (forge would otherwise try to read a public key's bits as ASN.1). */
const fromDer = (der: Buffer): Asn1 => forgeAsn1.fromDer(der.toString('binary'), { decodeBitStrings: false });

const toDer = (node: Asn1): Buffer => Buffer.from(asn1.toDer(node).getBytes(), 'binary');
const children = (node: Asn1): Asn1[] => node.value as Asn1[];
const sequence = (...items: Asn1[]): Asn1 => asn1.create(Class.UNIVERSAL, Type.SEQUENCE, true, items);
const oid = (id: string): Asn1 => asn1.create(Class.UNIVERSAL, Type.OID, false, asn1.oidToDer(id).getBytes());
const smallInteger = (n: number): Asn1 => asn1.create(Class.UNIVERSAL, Type.INTEGER, false, asn1.integerToDer(n).getBytes());
const hexInteger = (hex: string): Asn1 => asn1.create(Class.UNIVERSAL, Type.INTEGER, false, forge.util.hexToBytes(hex.length % 2 ? `0${hex}` : hex));
// RFC 5280: UTCTime through 2049, GeneralizedTime from 2050.
const time = (date: Date): Asn1 =>
  date.getUTCFullYear() < 2050
    ? asn1.create(Class.UNIVERSAL, Type.UTCTIME, false, asn1.dateToUtcTime(date))
    : asn1.create(Class.UNIVERSAL, Type.GENERALIZEDTIME, false, asn1.dateToGeneralizedTime(date));
const authorityKeyId = (keyId: string): Asn1 => sequence(asn1.create(Class.CONTEXT_SPECIFIC, 0, false, keyId));

/** A new ECDSA P-256 key: the private key as PKCS#8 PEM, the public key as SPKI DER. */
export function newKeyPair(): { keyPem: string; publicKey: Buffer } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', {
    namedCurve: KEY_CURVE,
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'der' },
  });
  return { keyPem: privateKey, publicKey };
}

/**
 * 16 random bytes whose top bits are 01: positive in DER (high bit clear) and never a
 * leading zero byte, which would be illegal padding in strict DER, so the serial is
 * always 32 hex digits and reads the same here as in `openssl x509 -serial`.
 */
export function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x3f) | 0x40;
  return bytes.toString('hex');
}

function validity(days: number): { notBefore: Date; notAfter: Date } {
  const now = Date.now();
  return { notBefore: new Date(now - BACKDATE_MS), notAfter: new Date(now + days * 24 * 60 * 60 * 1000) };
}

/** RFC 5280 section 4.2.1.2, method 1: SHA-1 of the subjectPublicKey BIT STRING's bits, for any key type. */
function keyIdentifier(spki: Asn1): string {
  const bits = (children(spki)[1]!.value as string).slice(1); // after the unused-bits count
  return createHash('sha1').update(bits, 'binary').digest('binary');
}

/** The signature algorithm the CA's key type calls for, both over SHA-256. */
function signatureAlgorithm(key: KeyObject): Asn1 {
  switch (key.asymmetricKeyType) {
    case 'ec': // parameters absent (RFC 5758)
      return sequence(oid(OID_ECDSA_WITH_SHA256));
    case 'rsa': // CAs made before the move to ECDSA; NULL parameters (RFC 4055)
      return sequence(oid(OID_SHA256_WITH_RSA), asn1.create(Class.UNIVERSAL, Type.NULL, false, ''));
    default:
      throw new PkiError(`the CA key is of type ${key.asymmetricKeyType}; only EC and RSA CA keys are supported`);
  }
}

/**
 * Signs a TBSCertificate or TBSCertList with node:crypto and wraps it into the signed
 * structure, which has the same shape for both: SEQUENCE { tbs, algorithm, BIT STRING
 * signature }. The builder gets the algorithm so that it names the same one inside.
 */
function signAndWrap(key: KeyObject, buildTbs: (algorithm: Asn1) => Asn1): Buffer {
  const tbs = buildTbs(signatureAlgorithm(key));
  const signature = sign('sha256', toDer(tbs), key); // DER ECDSA-Sig-Value for EC, PKCS#1 v1.5 for RSA
  const bits = asn1.create(Class.UNIVERSAL, Type.BITSTRING, false, `\0${signature.toString('binary')}`); // 0 unused bits
  return toDer(sequence(tbs, signatureAlgorithm(key), bits));
}

const toPem = (type: string, der: Buffer): string => forge.pem.encode({ type, body: der.toString('binary') });

/** A CA as the signer of certificates and CRLs. */
interface Issuer {
  /** The CA's subject, which becomes the issuer of what it signs, byte for byte. */
  name: Asn1;
  /** The CA's subject key identifier, which becomes the authority key identifier of what it signs. */
  keyId: string;
  notAfter: Date;
  key: KeyObject;
}

/** The CA certificate and key, parsed with OpenSSL (forge cannot read EC certificates) and checked to match. */
export function loadIssuer(ca: KeyAndCert): Issuer {
  let cert: X509Certificate;
  let key: KeyObject;
  try {
    cert = new X509Certificate(ca.certPem);
    key = createPrivateKey(ca.keyPem);
  } catch (err) {
    throw new PkiError(`cannot read the CA certificate or key: ${(err as Error).message}`);
  }
  if (!cert.checkPrivateKey(key)) throw new PkiError('the CA key does not belong to the CA certificate (ca.key and ca.crt are from different CAs)');
  signatureAlgorithm(key); // refuses a key type we cannot sign with before anything is made
  // TBSCertificate: [0] version (absent in v1), serial, signature, issuer, validity, subject, subjectPublicKeyInfo, ..., [3] extensions.
  const tbs = children(children(fromDer(cert.raw))[0]!);
  const fields = tbs[0]!.tagClass === Class.CONTEXT_SPECIFIC ? tbs.slice(1) : tbs;
  const [notAfter] = children(fields[3]!).slice(1);
  return {
    name: fields[4]!,
    keyId: subjectKeyIdOf(tbs) ?? keyIdentifier(fields[5]!),
    notAfter: notAfter!.type === Type.UTCTIME ? asn1.utcTimeToDate(notAfter!.value as string) : asn1.generalizedTimeToDate(notAfter!.value as string),
    key,
  };
}

/** The subject key identifier extension's value, if the certificate has one. */
function subjectKeyIdOf(tbs: Asn1[]): string | undefined {
  const extensions = tbs.find((node) => node.tagClass === Class.CONTEXT_SPECIFIC && node.type === 3);
  const ski =
    extensions &&
    children(children(extensions)[0]!).find((extension) => asn1.derToOid(children(extension)[0]!.value as string) === OID_SUBJECT_KEY_ID);
  return ski && (fromDer(Buffer.from(children(ski).at(-1)!.value as string, 'binary')).value as string);
}

type Extension = { name: string } & Record<string, unknown>;

interface CertificateSpec {
  subject: forge.pki.CertificateField[];
  /** The subject's public key, SPKI DER. */
  publicKey: Buffer;
  serial: string;
  notBefore: Date;
  notAfter: Date;
  /** In node-forge's notation; the key identifiers are added here. */
  extensions: Extension[];
}

/** A subject name's ASN.1 (forge fills in the attribute types and encodings). */
function distinguishedName(attributes: forge.pki.CertificateField[]): Asn1 {
  const cert = forge.pki.createCertificate();
  cert.setSubject(attributes);
  return forge.pki.distinguishedNameToAsn1(cert.subject);
}

/** A v3 certificate for `spec`, signed by `issuer`; its PEM. */
export function signCertificate(issuer: Issuer, spec: CertificateSpec): string {
  const spki = fromDer(spec.publicKey);
  const keyId = keyIdentifier(spki);
  const cert = forge.pki.createCertificate(); // only to fill in the extensions' encodings
  cert.setExtensions([
    ...spec.extensions,
    { id: OID_SUBJECT_KEY_ID, value: asn1.create(Class.UNIVERSAL, Type.OCTETSTRING, false, keyId) },
    // A self-signed certificate (the CA's) names no other key.
    ...(keyId === issuer.keyId ? [] : [{ id: OID_AUTHORITY_KEY_ID, value: authorityKeyId(issuer.keyId) }]),
  ]);
  return toPem(
    'CERTIFICATE',
    signAndWrap(issuer.key, (algorithm) =>
      sequence(
        asn1.create(Class.CONTEXT_SPECIFIC, 0, true, [smallInteger(2)]), // v3
        hexInteger(spec.serial),
        algorithm,
        issuer.name,
        sequence(time(spec.notBefore), time(spec.notAfter)),
        distinguishedName(spec.subject),
        spki,
        forgePki.certificateExtensionsToAsn1(cert.extensions),
      ),
    ),
  );
}

/** A self-signed CA certificate and its key. */
export function createCa(commonName: string): KeyAndCert {
  const { keyPem, publicKey } = newKeyPair();
  const subject = [
    { name: 'commonName', value: commonName },
    { name: 'organizationName', value: 'DistRunner' },
  ];
  const { notBefore, notAfter } = validity(CA_DAYS);
  const self: Issuer = {
    name: distinguishedName(subject),
    keyId: keyIdentifier(fromDer(publicKey)),
    notAfter,
    key: createPrivateKey(keyPem),
  };
  const certPem = signCertificate(self, {
    subject,
    publicKey,
    serial: randomSerial(),
    notBefore,
    notAfter,
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    ],
  });
  return { certPem, keyPem };
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
  const issuer = loadIssuer(ca);
  const { keyPem, publicKey } = newKeyPair();
  const serial = randomSerial();
  const { notBefore, notAfter } = validity(days);
  const altNames = [...dnsNames.map((value) => ({ type: 2, value })), ...ipAddresses.map((ip) => ({ type: 7, ip }))];
  const certPem = signCertificate(issuer, {
    subject: [
      { name: 'commonName', value: request.commonName },
      { name: 'organizationName', value: 'DistRunner' },
      { name: 'organizationalUnitName', value: request.role },
    ],
    publicKey,
    serial,
    notBefore,
    notAfter,
    extensions: [
      { name: 'basicConstraints', cA: false, critical: true },
      // No keyEncipherment: that is RSA key transport, which an EC key cannot do.
      { name: 'keyUsage', digitalSignature: true, critical: true },
      // A broker serves clients and dials its cluster's other nodes with the same certificate.
      { name: 'extKeyUsage', ...EXTENDED_KEY_USAGE[request.role] },
      ...(altNames.length > 0 ? [{ name: 'subjectAltName', altNames }] : []),
    ],
  });
  return { certPem, keyPem, serial, notAfter };
}

interface RevokedEntry {
  serial: string;
  revokedAt: Date;
}

/**
 * A v2 CRL signed by the CA (node-forge has no CRL support, so it is assembled from
 * ASN.1 here: RFC 5280 section 5). nextUpdate is the CA's own expiry, so the list
 * never goes stale before the CA does; publish a new one after every revocation.
 */
export function createCrl(
  ca: KeyAndCert,
  revoked: readonly RevokedEntry[],
  crlNumber: number,
  times?: { thisUpdate: Date; nextUpdate: Date },
): string {
  const issuer = loadIssuer(ca);
  const extension = (id: string, value: Asn1) => forgePki.certificateExtensionToAsn1({ id, value });
  return toPem(
    'X509 CRL',
    signAndWrap(issuer.key, (algorithm) =>
      sequence(
        smallInteger(1), // v2
        algorithm,
        issuer.name,
        time(times?.thisUpdate ?? new Date(Date.now() - BACKDATE_MS)),
        time(times?.nextUpdate ?? issuer.notAfter),
        ...(revoked.length > 0 ? [sequence(...revoked.map((entry) => sequence(hexInteger(entry.serial), time(entry.revokedAt))))] : []),
        asn1.create(Class.CONTEXT_SPECIFIC, 0, true, [
          sequence(extension(OID_CRL_NUMBER, smallInteger(crlNumber)), extension(OID_AUTHORITY_KEY_ID, authorityKeyId(issuer.keyId))),
        ]),
      ),
    ),
  );
}
