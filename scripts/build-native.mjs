#!/usr/bin/env node
// Builds the agent's native spawn (native/spawn.c → build/Release/distrun_spawn.node) with
// npm's own node-gyp and the Node headers npm points it at (Debian: /usr/include/node).
// Run by `npm install` (the package's install script) and by `npm run build` when the
// source is newer than the addon. A failed build is not an error: the agent then starts
// commands with Node's child_process, as it says in its log (docs/operations.md).
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const source = join(root, 'native', 'spawn.c');
const addon = join(root, 'build', 'Release', 'distrun_spawn.node');

if (!existsSync(source)) process.exit(0); // an installed package that carries only the addon
// Up to date, and loads here (a package's prebuilt addon on another machine may not): nothing to do.
if (process.argv.includes('--if-changed') && existsSync(addon) && statSync(addon).mtimeMs >= statSync(source).mtimeMs && loads(addon))
  process.exit(0);

function loads(path) {
  try {
    createRequire(import.meta.url)(path);
    return true;
  } catch {
    return false;
  }
}

const nodeGyp = [
  process.env.npm_config_node_gyp,
  join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
].find((path) => path && existsSync(path));
const nodedir = process.env.npm_config_nodedir ?? (existsSync('/usr/include/node/node_api.h') ? '/usr' : undefined);
if (!nodeGyp) {
  console.warn('distrunner: node-gyp not found: the agent will start commands with child_process (no native spawn)');
  process.exit(0);
}
const result = spawnSync(process.execPath, [nodeGyp, 'rebuild', '--silent', ...(nodedir ? [`--nodedir=${nodedir}`] : [])], {
  cwd: root,
  stdio: ['ignore', 'ignore', 'pipe'],
  encoding: 'utf8',
});
if (result.status !== 0) {
  const why = (result.stderr ?? '')
    .split('\n')
    .filter((line) => /error/i.test(line))
    .slice(0, 3)
    .join('\n  ');
  console.warn(
    `distrunner: the native spawn was not built (the agent will start commands with child_process):\n  ${why || `node-gyp exit ${result.status}`}`,
  );
}
