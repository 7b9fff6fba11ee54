#!/usr/bin/env node
// Bundles the CLI (dist/src/bin/distrun.js and the ~90 modules it imports, commander
// included) into that one file, with a chunk for what is imported on first use: Node then
// loads one module instead of resolving, reading and linking each (docs/benchmarks.md,
// "Round two"). The packages loaded on first use only (yaml, node-forge, pino, node-pty)
// stay outside, loaded from node_modules. The agent is not bundled. Run by `npm run build`
// after tsc.
import { build } from 'esbuild';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const entry = join(root, 'dist', 'src', 'bin', 'distrun.js');
await build({
  entryPoints: [entry],
  outdir: dirname(entry),
  entryNames: '[name]',
  // What a subcommand loads on first use (`certs`: node-forge) stays a chunk of its own,
  // so that its packages are not imported by every run.
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  allowOverwrite: true,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: ['yaml', 'node-forge', 'pino', 'node-pty'],
  // commander is CommonJS: its require() calls of node built-ins need a require here.
  banner: { js: "import { createRequire as __distrunCreateRequire } from 'node:module';\nconst require = __distrunCreateRequire(import.meta.url);" },
  logLevel: 'warning',
});
