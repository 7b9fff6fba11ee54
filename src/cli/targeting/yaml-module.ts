// The yaml package, loaded on first use: a cached inventory needs no YAML parser (it
// takes 30 ms to load), and `distrun -H` none at all.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export const yaml = (): typeof import('yaml') => require('yaml') as typeof import('yaml');
