// The SHA-256 tests compare files and streams by, as the protocol and the records write it.
import { createHash } from 'node:crypto';

export const sha256Hex = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex');
