// The TLS both sides speak: 1.3 only. AES-128-GCM first: TLS 1.3's mandatory suite,
// hardware-accelerated, and a quarter cheaper than AES-256-GCM per byte, which is what
// a large output stream costs (docs/benchmarks.md); the others stay acceptable.
export const TLS_SETTINGS = {
  minVersion: 'TLSv1.3',
  maxVersion: 'TLSv1.3',
  ciphers: 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256',
} as const;
