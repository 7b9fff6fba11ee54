// Signature algorithms by OID, for what is checked here rather than by OpenSSL (CRLs)
// and for saying plainly why a certificate is refused (a SHA-1 signature).

/** The digest node:crypto verifies with (null: the algorithm has its own), or why it is refused. */
type SignatureAlgorithm = { hash: string | null } | { weak: string };

const ALGORITHMS: Record<string, SignatureAlgorithm> = {
  '1.2.840.10045.4.3.2': { hash: 'sha256' }, // ecdsa-with-SHA256
  '1.2.840.10045.4.3.3': { hash: 'sha384' },
  '1.2.840.10045.4.3.4': { hash: 'sha512' },
  '1.2.840.113549.1.1.11': { hash: 'sha256' }, // sha256WithRSAEncryption
  '1.2.840.113549.1.1.12': { hash: 'sha384' },
  '1.2.840.113549.1.1.13': { hash: 'sha512' },
  '1.3.101.112': { hash: null }, // Ed25519
  '1.3.101.113': { hash: null }, // Ed448
  '1.2.840.113549.1.1.5': { weak: 'SHA-1 with RSA' },
  '1.2.840.10045.4.1': { weak: 'ECDSA with SHA-1' },
  '1.2.840.10040.4.3': { weak: 'DSA with SHA-1' },
  '1.2.840.113549.1.1.4': { weak: 'MD5 with RSA' },
};

export function signatureAlgorithm(oid: string): SignatureAlgorithm | undefined {
  return Object.hasOwn(ALGORITHMS, oid) ? ALGORITHMS[oid] : undefined;
}
