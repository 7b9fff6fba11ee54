// The floor for every certificate in the fleet: a peer's, one's own, the CA's. Keys of
// at least RSA 2048 / P-256, signatures better than SHA-1. The TLS settings also ask
// OpenSSL for security level 2 (the same floor for whole chains); this check states the
// rule explicitly so that it holds whatever OpenSSL's defaults are, and says what is weak.
import { X509Certificate, type KeyObject } from 'node:crypto';
import { pemCertificates } from './der.js';
import { signatureAlgorithm } from './signature-algorithms.js';
import { signatureAlgorithmOid } from './x509-fields.js';

const MIN_RSA_BITS = 2048;
const CURVES: Record<string, string> = { prime256v1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521' };

/** Why `key` is too weak for the fleet, or undefined when it is strong enough. */
function weakKeyProblem(key: KeyObject): string | undefined {
  const { asymmetricKeyType: type, asymmetricKeyDetails: details } = key;
  switch (type) {
    case 'rsa':
    case 'rsa-pss': {
      const bits = details?.modulusLength ?? 0;
      return bits >= MIN_RSA_BITS ? undefined : `its key is RSA with ${bits} bits; at least ${MIN_RSA_BITS} are needed`;
    }
    case 'ec':
      return details?.namedCurve && CURVES[details.namedCurve]
        ? undefined
        : `its key is on the curve ${details?.namedCurve ?? '(unknown)'}; P-256, P-384 or P-521 are needed`;
    case 'ed25519':
    case 'ed448':
      return undefined;
    default:
      return `its key is of type ${type ?? '(unknown)'}; RSA (${MIN_RSA_BITS} bits or more), EC (P-256 or larger) or Ed25519 keys are needed`;
  }
}

/** Why `cert`'s key or signature is too weak for the fleet, or undefined. */
export function weakCertificateProblem(cert: X509Certificate): string | undefined {
  const key = weakKeyProblem(cert.publicKey);
  if (key) return key;
  // A self-signed CA is trusted as itself: its own signature is not what trust rests on (nor does OpenSSL check it).
  if (cert.issuer === cert.subject) return undefined;
  let oid: string;
  try {
    oid = signatureAlgorithmOid(cert.raw);
  } catch {
    return undefined; // OpenSSL parsed it; what it is signed with is OpenSSL's to judge
  }
  const algorithm = signatureAlgorithm(oid);
  return algorithm && 'weak' in algorithm ? `its signature is ${algorithm.weak}; SHA-256 or better is needed` : undefined;
}

/** The first certificate in `pem` (a file with certificates) whose key or signature is too weak, and why. */
export function weakCertificateInFile(pem: Buffer | string): string | undefined {
  for (const block of pemCertificates(pem.toString())) {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(block);
    } catch {
      continue; // unreadable certificates are reported by the secure context
    }
    const problem = weakCertificateProblem(cert);
    if (problem) return `${cert.subject.split('\n').find((l) => l.startsWith('CN=')) ?? 'a certificate'}: ${problem}`;
  }
  return undefined;
}
