// The role the fleet CA gives each certificate it issues (its subject's OU, certificates.ts):
// agent, client or broker. Extended key usage alone cannot tell them apart: an agent's and
// a broker's certificates also carry client use, to log in to a broker (and a broker's to
// its cluster's other nodes). A certificate that names another role is never taken for
// this one, whatever its key usage says.
import { stringOf } from './der.js';
import { certificateFields, nameAttributes, Oids } from './x509-fields.js';

type FleetRole = 'agent' | 'client' | 'broker';

const ROLE_WORDS: Record<FleetRole, string> = { agent: "an agent's", client: "a client's", broker: "a broker's" };

/** Why `certificate` (DER) cannot be taken for `wanted`, to follow "... certificate"; undefined when it can. */
export function otherRoleProblem(certificate: Buffer, wanted: FleetRole): string | undefined {
  let roles: string[];
  try {
    roles = nameAttributes(certificateFields(certificate).subject, Oids.ORGANIZATIONAL_UNIT).map((value) => stringOf(value) ?? '');
  } catch {
    return 'has a subject that cannot be read (malformed)';
  }
  const other = roles.find((role): role is FleetRole => role !== wanted && Object.hasOwn(ROLE_WORDS, role));
  return other === undefined ? undefined : `is ${ROLE_WORDS[other]} certificate, not ${ROLE_WORDS[wanted]}`;
}

/** Why `certificate` (DER) is not a broker's of this fleet, to follow "the broker's certificate"; undefined when it is. */
export function brokerCertificateProblem(certificate: Buffer): string | undefined {
  const other = otherRoleProblem(certificate, 'broker');
  if (other !== undefined) return other;
  // A broker's certificate must say so: the role is not taken from the absence of another.
  const roles = nameAttributes(certificateFields(certificate).subject, Oids.ORGANIZATIONAL_UNIT).map((value) => stringOf(value));
  return roles.includes('broker') ? undefined : 'is not issued for a broker (distrun certs broker)';
}
