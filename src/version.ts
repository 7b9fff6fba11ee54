import { createRequire } from 'node:module';

// package.json is the one place the version is written.
const require = createRequire(import.meta.url);
export const SOFTWARE_VERSION: string = (require('../../package.json') as { version: string }).version;
