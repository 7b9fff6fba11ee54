// Which name a client certificate stands for. One rule, used for allowedClients, policy,
// session limits, logs, audit and DISTRUN_CLIENT: the certificate's DNS subject
// alternative name, else its common name, and exactly one of each at most. A certificate
// that could be read as two clients is refused rather than taken as either.
import { childrenOf, contextTag, DerTag, expectTag, readWhole, stringOf } from './der.js';
import { isPlainName } from './names.js';
import { certificateFields, nameAttributes, Oids } from './x509-fields.js';

type ClientName = { name: string; problem?: undefined } | { name?: undefined; problem: string };

const DNS_NAME = contextTag(2, false); // GeneralName dNSName [2] IA5String, implicit

const listed = (names: string[]): string => names.map((n) => JSON.stringify(n)).join(', ');

/** The client's name from its certificate (DER), or what is wrong, to follow "client certificate". */
export function clientNameOf(certificate: Buffer): ClientName {
  let dnsNames: string[];
  let commonNames: string[];
  try {
    const { subject, extensions } = certificateFields(certificate);
    commonNames = nameAttributes(subject, Oids.COMMON_NAME).map((value) => stringOf(value) ?? '\u0000');
    const san = extensions.get(Oids.SUBJECT_ALT_NAME);
    // Other kinds of alternative names (IP addresses, e-mail, URIs) do not name clients.
    const generalNames = san ? childrenOf(expectTag(readWhole(san.value), DerTag.SEQUENCE, 'subjectAltName')) : [];
    dnsNames = generalNames.filter((n) => n.tag === DNS_NAME).map((n) => n.content.toString('latin1'));
  } catch {
    return { problem: 'has names that cannot be read (malformed)' };
  }
  if (commonNames.length > 1) return { problem: `has several common names (${listed(commonNames)}); it must name exactly one client` };
  if (dnsNames.length > 1) return { problem: `has several DNS names (${listed(dnsNames)}); it must name exactly one client` };
  const [dns] = dnsNames;
  const [cn] = commonNames;
  if (dns !== undefined && cn !== undefined && dns !== cn) {
    return {
      problem: `has the DNS name ${JSON.stringify(dns)} and the common name ${JSON.stringify(cn)}, which differ; it must name exactly one client`,
    };
  }
  const name = dns ?? cn;
  if (name === undefined) return { problem: 'names no client (no DNS name, no common name)' };
  if (!isPlainName(name)) return { problem: `has the name ${JSON.stringify(name)}, which is not a plain name (letters, digits, '.', '-', '_')` };
  return { name };
}
