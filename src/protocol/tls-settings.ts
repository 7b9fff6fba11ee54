// The TLS both sides speak: 1.3 only. AES-128-GCM first: TLS 1.3's mandatory suite,
// hardware-accelerated, and a quarter cheaper than AES-256-GCM per byte, which is what
// a large output stream costs (docs/benchmarks.md); the others stay acceptable.
//
// Security level 2 (OpenSSL's default here is 1): every certificate of a chain, the
// peer's and one's own, needs a key of at least 112 bits of strength (RSA 2048, EC
// P-224 and up) and a signature digest better than SHA-1. OpenSSL takes the level only
// from the TLS 1.2 part of the list, which therefore names DEFAULT; no TLS 1.2 suite is
// ever used (minVersion). The level applies to TLS 1.3 chains (tested); pki/key-strength.ts
// states the same floor explicitly.
export const TLS_SETTINGS = {
  minVersion: 'TLSv1.3',
  maxVersion: 'TLSv1.3',
  ciphers: 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:DEFAULT@SECLEVEL=2',
} as const;
