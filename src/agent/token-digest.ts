// The shared token is kept only as its SHA-256 digest (configuration loading) and compared
// in constant time (sessions).
import { createHash, timingSafeEqual } from 'node:crypto';

export function tokenDigest(token: Buffer): Buffer {
  return createHash('sha256').update(token).digest();
}

/** Constant-time whatever the length sent: fixed-length digests are compared. */
export function tokenMatches(given: Buffer, expectedDigest: Buffer): boolean {
  return timingSafeEqual(tokenDigest(given), expectedDigest);
}
