// Reading a certificate revocation list and checking that it can be used: issued by the
// CA it is meant for, signed with that CA's key, and current. OpenSSL would take a CRL
// that fails any of these, then refuse every certificate at the handshake; this refuses
// the file instead, with the reason, where it is loaded (agent start, reload,
// --check-config; distrun at the start of a run).
import { verify, X509Certificate, type KeyObject } from 'node:crypto';
import { PkiError } from '../errors.js';
import {
  childrenOf,
  contextTag,
  DerTag,
  expectTag,
  integerHex,
  oidOf,
  pemBlock,
  pemCertificates,
  readWhole,
  timeOf,
  type DerElement,
} from './der.js';
import { signatureAlgorithm } from './signature-algorithms.js';
import { certificateFields, Oids, readExtensions } from './x509-fields.js';

export interface RevocationList {
  /** The CRL as PEM, re-encoded from exactly the bytes that were checked. */
  pem: string;
  thisUpdate: Date;
  nextUpdate: Date;
  /** Serial numbers of revoked certificates: lower-case hex, no leading zeros. */
  revoked: ReadonlySet<string>;
}

/** Serial numbers as node:crypto prints them (upper case, maybe leading zeros) in the form of `revoked`. */
export function normalizeSerial(serial: string): string {
  return serial.toLowerCase().replace(/^0+(?=.)/, '');
}

// Extensions a complete CRL of one CA may carry; anything else marked critical means a
// kind of CRL (delta, partitioned, indirect) that would not cover every certificate.
const KNOWN_CRL_EXTENSIONS = new Set<string>([Oids.CRL_NUMBER, Oids.AUTHORITY_KEY_ID]);
const DELTA_CRL_INDICATOR = '2.5.29.27';
const ISSUING_DISTRIBUTION_POINT = '2.5.29.28';

const date = (d: Date): string => d.toISOString().replace(/\.000Z$/, 'Z');

function signatureOk(algorithm: string, tbs: Buffer, signature: Buffer, key: KeyObject): boolean {
  const known = signatureAlgorithm(algorithm);
  if (!known) throw new PkiError(`it is signed with an algorithm this version does not check (${algorithm})`);
  if ('weak' in known) throw new PkiError(`it is signed with ${known.weak}, which is too weak`);
  try {
    return verify(known.hash, tbs, key, signature);
  } catch {
    return false; // a key of another type than the algorithm's: not this CA's signature
  }
}

/** The CA among `caPem`'s certificates whose subject is `issuer`, byte for byte. */
function issuingCa(caPem: string, issuer: DerElement): X509Certificate | undefined {
  for (const block of pemCertificates(caPem)) {
    let ca: X509Certificate;
    try {
      ca = new X509Certificate(block);
    } catch {
      continue; // not a certificate OpenSSL can read: it cannot have issued anything either
    }
    if (certificateFields(ca.raw).subject.bytes.equals(issuer.bytes)) return ca;
  }
  return undefined;
}

/** keyUsage, when present, must allow signing CRLs (bit 6, cRLSign). */
function mayRevoke(ca: X509Certificate): boolean {
  const keyUsage = certificateFields(ca.raw).extensions.get(Oids.KEY_USAGE);
  if (!keyUsage) return true;
  const bits = expectTag(readWhole(keyUsage.value), DerTag.BIT_STRING, 'key usage').content;
  return ((bits[1] ?? 0) & 0x02) !== 0;
}

/**
 * Parses `crlPem` and checks it against the CA certificate(s) in `caPem` at `now`.
 * Throws a PkiError saying what is wrong, in words an operator can act on.
 */
export function readCrl(crlPem: string, caPem: string, now = new Date()): RevocationList {
  const der = pemBlock(crlPem, 'X509 CRL', 'the file');
  const [tbs, outerAlgorithm, signatureBits, ...rest] = childrenOf(expectTag(readWhole(der), DerTag.SEQUENCE, 'CRL'));
  if (rest.length > 0) throw new PkiError('it is not a CRL (unexpected fields after the signature)');
  const fields = childrenOf(expectTag(tbs, DerTag.SEQUENCE, 'TBSCertList'));
  let i = 0;
  if (fields[i]?.tag === DerTag.INTEGER) {
    if (integerHex(fields[i]!) !== '1') throw new PkiError('it is not a version 2 CRL');
    i += 1;
  }
  const innerAlgorithm = expectTag(fields[i++], DerTag.SEQUENCE, 'signature algorithm');
  const issuer = expectTag(fields[i++], DerTag.SEQUENCE, 'issuer');
  const thisUpdate = timeOf(fields[i++]!);
  const nextUpdate =
    fields[i] && (fields[i]!.tag === DerTag.UTC_TIME || fields[i]!.tag === DerTag.GENERALIZED_TIME) ? timeOf(fields[i++]!) : undefined;
  const revoked = new Set<string>();
  if (fields[i]?.tag === DerTag.SEQUENCE) {
    for (const entry of childrenOf(fields[i++]!)) {
      const [serial, revokedAt, entryExtensions] = childrenOf(expectTag(entry, DerTag.SEQUENCE, 'revoked certificate'));
      timeOf(revokedAt!);
      for (const [id, extension] of entryExtensions ? readExtensions(entryExtensions) : []) {
        // certificateIssuer (indirect CRLs) and any other critical entry extension change what an entry means.
        if (extension.critical) throw new PkiError(`an entry has a critical extension this version does not handle (${id})`);
      }
      revoked.add(integerHex(serial!));
    }
  }
  if (fields[i]?.tag === contextTag(0)) {
    for (const [id, extension] of readExtensions(childrenOf(fields[i++]!)[0]!)) {
      if (id === DELTA_CRL_INDICATOR || id === ISSUING_DISTRIBUTION_POINT) {
        throw new PkiError('it is a delta or partitioned CRL; a complete CRL is needed (distrun certs crl writes one)');
      }
      if (extension.critical && !KNOWN_CRL_EXTENSIONS.has(id)) throw new PkiError(`it has a critical extension this version does not handle (${id})`);
    }
  }
  if (i !== fields.length) throw new PkiError('it is not a CRL (unexpected fields)');

  if (!expectTag(outerAlgorithm, DerTag.SEQUENCE, 'signature algorithm').bytes.equals(innerAlgorithm.bytes)) {
    throw new PkiError('its two signature algorithm fields differ (damaged or forged)');
  }
  const ca = issuingCa(caPem, issuer);
  if (!ca) throw new PkiError("it was not issued by this CA (its issuer is not the CA certificate's subject)");
  if (!mayRevoke(ca)) throw new PkiError("the CA certificate's key usage does not allow signing CRLs");
  const bits = expectTag(signatureBits, DerTag.BIT_STRING, 'signature').content;
  if (bits[0] !== 0 || !signatureOk(oidOf(childrenOf(innerAlgorithm)[0]!), tbs!.bytes, bits.subarray(1), ca.publicKey)) {
    throw new PkiError("its signature does not verify with the CA's key (damaged, or signed by another CA of the same name)");
  }
  if (thisUpdate.getTime() > now.getTime()) {
    throw new PkiError(`it is not valid before ${date(thisUpdate)} (is this machine's clock right?)`);
  }
  if (!nextUpdate) throw new PkiError('it has no next-update time, so it could never be recognized as stale');
  if (nextUpdate.getTime() < now.getTime()) {
    throw new PkiError(`it expired on ${date(nextUpdate)}; publish a current one with 'distrun certs crl'`);
  }
  const pem = `-----BEGIN X509 CRL-----\n${der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')}-----END X509 CRL-----\n`;
  return { pem, thisUpdate, nextUpdate, revoked };
}
