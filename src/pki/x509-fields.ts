// The fields of an X.509 certificate that node:crypto does not expose in a form fit
// for security decisions: the subject's exact bytes and attributes, and the extensions.
import { childrenOf, contextTag, DerError, DerTag, expectTag, oidOf, readWhole, type DerElement } from './der.js';

export const Oids = {
  COMMON_NAME: '2.5.4.3',
  ORGANIZATIONAL_UNIT: '2.5.4.11',
  SUBJECT_ALT_NAME: '2.5.29.17',
  KEY_USAGE: '2.5.29.15',
  CRL_NUMBER: '2.5.29.20',
  AUTHORITY_KEY_ID: '2.5.29.35',
  SERVER_AUTH: '1.3.6.1.5.5.7.3.1',
  CLIENT_AUTH: '1.3.6.1.5.5.7.3.2',
} as const;

interface Extension {
  critical: boolean;
  /** The extnValue OCTET STRING's content: the extension's own DER. */
  value: Buffer;
}

interface CertificateFields {
  /** The subject Name, byte for byte (what a CRL's issuer must equal). */
  subject: DerElement;
  extensions: Map<string, Extension>;
}

/** Extensions ::= SEQUENCE OF SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING } */
export function readExtensions(sequence: DerElement): Map<string, Extension> {
  const extensions = new Map<string, Extension>();
  for (const extension of childrenOf(expectTag(sequence, DerTag.SEQUENCE, 'extensions'))) {
    const [id, second, third] = childrenOf(expectTag(extension, DerTag.SEQUENCE, 'extension'));
    const critical = second?.tag === DerTag.BOOLEAN && second.content[0] !== 0;
    const value = expectTag(second?.tag === DerTag.BOOLEAN ? third : second, DerTag.OCTET_STRING, 'extension value');
    const oid = oidOf(id!);
    // RFC 5280 4.2: a certificate must not include more than one instance of an extension.
    if (extensions.has(oid)) throw new DerError(`extension ${oid} appears twice`);
    extensions.set(oid, { critical, value: value.content });
  }
  return extensions;
}

export function certificateFields(der: Buffer): CertificateFields {
  const [tbs] = childrenOf(expectTag(readWhole(der), DerTag.SEQUENCE, 'certificate'));
  const fields = childrenOf(expectTag(tbs, DerTag.SEQUENCE, 'TBSCertificate'));
  // [0] version (absent in v1), serial, signature, issuer, validity, subject, subjectPublicKeyInfo, [1], [2], [3] extensions.
  const body = fields[0]?.tag === contextTag(0) ? fields.slice(1) : fields;
  const subject = expectTag(body[4], DerTag.SEQUENCE, 'subject');
  const wrapped = body.slice(6).find((f) => f.tag === contextTag(3));
  return { subject, extensions: wrapped ? readExtensions(childrenOf(wrapped)[0]!) : new Map() };
}

/** The OID of the algorithm the certificate is signed with (the outer signatureAlgorithm). */
export function signatureAlgorithmOid(der: Buffer): string {
  const [, algorithm] = childrenOf(expectTag(readWhole(der), DerTag.SEQUENCE, 'certificate'));
  return oidOf(childrenOf(expectTag(algorithm, DerTag.SEQUENCE, 'signature algorithm'))[0]!);
}

/** Every value of the attribute `oid` in a Name, in order (RDNs may hold several). */
export function nameAttributes(name: DerElement, oid: string): DerElement[] {
  const values: DerElement[] = [];
  for (const rdn of childrenOf(expectTag(name, DerTag.SEQUENCE, 'name'))) {
    for (const attribute of childrenOf(expectTag(rdn, DerTag.SET, 'relative distinguished name'))) {
      const [type, value] = childrenOf(expectTag(attribute, DerTag.SEQUENCE, 'attribute'));
      if (oidOf(type!) === oid && value) values.push(value);
    }
  }
  return values;
}
