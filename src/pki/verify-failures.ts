// OpenSSL's certificate verification results in words, for both sides: the agent tells
// a refused client why (and logs it), distrun says why it will not talk to an agent.

const FOREIGN = "is not issued by this fleet's CA";
const BY_CODE: Record<string, string> = {
  CERT_HAS_EXPIRED: 'has expired',
  CERT_NOT_YET_VALID: 'is not valid yet',
  CERT_REVOKED: 'has been revoked',
  UNABLE_TO_GET_ISSUER_CERT: FOREIGN,
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: FOREIGN,
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: FOREIGN,
  SELF_SIGNED_CERT_IN_CHAIN: FOREIGN,
  CERT_UNTRUSTED: FOREIGN,
  DEPTH_ZERO_SELF_SIGNED_CERT: `is self-signed: it ${FOREIGN}`,
  CERT_SIGNATURE_FAILURE: 'has a signature that does not verify (damaged or forged)',
  UNABLE_TO_DECRYPT_CERT_SIGNATURE: 'has a signature that does not verify (damaged or forged)',
  INVALID_CA: 'chains through a certificate that may not issue certificates',
  PATH_LENGTH_EXCEEDED: 'chains through a certificate that may not issue certificates',
  CERT_CHAIN_TOO_LONG: 'has too long a chain',
  ERROR_IN_CERT_NOT_BEFORE_FIELD: 'has a malformed validity period',
  ERROR_IN_CERT_NOT_AFTER_FIELD: 'has a malformed validity period',
  UNABLE_TO_GET_CRL: 'cannot be checked: the revocation list is not from its CA',
  CRL_HAS_EXPIRED: 'cannot be checked: the revocation list has expired',
  CRL_NOT_YET_VALID: 'cannot be checked: the revocation list is not valid yet',
  CRL_SIGNATURE_FAILURE: 'cannot be checked: the revocation list has a bad signature',
};

// Node names only some of OpenSSL's codes; the others arrive as UNSPECIFIED with
// OpenSSL's fixed text (X509_verify_cert_error_string).
const BY_OPENSSL_TEXT: Record<string, string> = {
  'EE certificate key too weak': 'has a key that is too weak (at least RSA 2048 bits or EC P-256 are needed)',
  'CA certificate key too weak': 'chains to a CA whose key is too weak',
  'CA signature digest algorithm too weak': 'is signed with a digest that is too weak (such as SHA-1)',
};

/** Whether `code` is one of Node's names for a certificate verification result. */
export function isVerificationCode(code: string): boolean {
  return Object.hasOwn(BY_CODE, code) || code === 'INVALID_PURPOSE' || code === 'UNSPECIFIED';
}

/**
 * What is wrong with a certificate, as the rest of a sentence that starts "… certificate":
 * `code` is Node's name for the verification result, `openssl` OpenSSL's text for it.
 * `purpose` completes "is not issued for …" (wrong extended key usage).
 */
export function verifyFailure(code: string, openssl: string | undefined, purpose: string): string {
  if (code === 'INVALID_PURPOSE') return `is not issued for ${purpose}`;
  const known = Object.hasOwn(BY_CODE, code)
    ? BY_CODE[code]
    : openssl !== undefined && Object.hasOwn(BY_OPENSSL_TEXT, openssl)
      ? BY_OPENSSL_TEXT[openssl]
      : undefined;
  return known ?? `was not accepted (${openssl ?? code})`;
}
