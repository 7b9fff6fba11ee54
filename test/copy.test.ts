// distrun copy end to end: real agents on loopback, the real distrun binary, the agents'
// file receivers writing real files (as root and as an unprivileged run-as user).
import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TEMP_PREFIX } from '../src/safe-paths.js';
import { cleanupAll, trioFleet, distrun, startAgent, tempDir, type Pki } from './helpers/fleet.js';

let pki: Pki;

let inventory: string;

test.before(async () => {
  ({ pki, inventory } = await trioFleet());
});

test.after.always(cleanupAll);

const on = (group: string, ...args: string[]) => ['-i', inventory, '--pki', pki.dir, '-g', group, ...args];
const sha = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');
const noTemporaries = (dir: string): boolean => !readdirSync(dir, { recursive: true }).some((name) => String(name).includes(TEMP_PREFIX));

test('a binary file to three hosts: changed on each, byte-exact with its mode; again: unchanged; the exit code is 0', async (t) => {
  const src = join(tempDir(), 'blob.bin');
  const data = Buffer.concat([randomBytes(3 * 1024 * 1024 + 5), Buffer.alloc(4096)]);
  writeFileSync(src, data, { mode: 0o640 });
  chmodSync(src, 0o640);
  const dests = [tempDir(), tempDir(), tempDir()];
  // Every host here is the same machine: one destination directory each, by a per-host symlink-free path.
  const results = await Promise.all(dests.map((dest, i) => distrun(on(`h${i + 1}`, 'copy', src, dest))));
  for (const [i, r] of results.entries()) {
    t.is(r.code, 0, r.stderr);
    t.is(r.stdout.toString(), `h${i + 1}: changed ${join(dests[i]!, 'blob.bin')}\nh${i + 1}: changed (1 changed)\n`);
    t.is(sha(readFileSync(join(dests[i]!, 'blob.bin'))), sha(data));
    t.is(statSync(join(dests[i]!, 'blob.bin')).mode & 0o7777, 0o640);
    t.true(noTemporaries(dests[i]!));
  }
  const again = await distrun(on('trio', 'copy', src, dests[0]!));
  t.is(again.code, 0, again.stderr);
  t.deepEqual(again.stdout.toString().trim().split('\n').sort(), [
    'h1: unchanged (1 unchanged)',
    'h2: unchanged (1 unchanged)',
    'h3: unchanged (1 unchanged)',
  ]);
  t.regex(again.stderr, /^distrun: 3 hosts: 3 unchanged\n$/);
});

test('a directory tree with -r: nested and empty directories, a link kept as a link, odd names; without -r it is refused', async (t) => {
  const src = join(tempDir(), 'site');
  mkdirSync(join(src, 'conf', 'deep'), { recursive: true });
  mkdirSync(join(src, 'empty'));
  writeFileSync(join(src, 'conf', 'a b\nü.txt'), 'spaces, newline, UTF-8');
  writeFileSync(join(src, 'conf', 'deep', 'zero'), Buffer.alloc(0));
  symlinkSync('conf/a b\nü.txt', join(src, 'current'));
  const dest = tempDir();
  const refused = await distrun(on('one', 'copy', src, dest));
  t.is(refused.code, 255);
  t.regex(refused.stderr, /site is a directory \(add -r to copy it\)/);
  const r = await distrun(on('one', 'copy', '-r', src, dest));
  t.is(r.code, 0, r.stderr);
  t.is(readFileSync(join(dest, 'site', 'conf', 'a b\nü.txt'), 'utf8'), 'spaces, newline, UTF-8');
  t.is(statSync(join(dest, 'site', 'conf', 'deep', 'zero')).size, 0);
  t.true(statSync(join(dest, 'site', 'empty')).isDirectory());
  t.is(readlinkSync(join(dest, 'site', 'current')), 'conf/a b\nü.txt');
  const again = await distrun(on('one', 'copy', '-r', src, dest));
  t.is(again.stdout.toString(), 'h1: unchanged (7 unchanged)\n');
});

test('one host whose destination the run-as user may not write fails; the others change; exit code 1', async (t) => {
  const src = join(tempDir(), 'app.conf');
  writeFileSync(src, 'listen 80\n');
  const ok = tempDir();
  const closed = tempDir();
  chmodSync(closed, 0o755);
  const limited = await startAgent(pki, 'agent1', { config: { runAs: 'nobody' } });
  const inv = join(tempDir(), 'hosts.yaml');
  writeFileSync(inv, `hosts:\n  open: { address: 127.0.0.1, port: ${limited.port} }\n  shut: { address: 127.0.0.1, port: ${limited.port} }\n`);
  chownSync(ok, 65534, 65534);
  const good = await distrun(['-i', inv, '--pki', pki.dir, '-H', 'open', 'copy', src, ok]);
  t.is(good.code, 0, good.stderr);
  t.is(statSync(join(ok, 'app.conf')).uid, 65534, 'written as the run-as user');
  const bad = await distrun(['-i', inv, '--pki', pki.dir, '-H', 'shut', 'copy', src, closed]);
  t.is(bad.code, 1, bad.stderr);
  t.regex(bad.stderr, new RegExp(`shut: failed ${join(closed, 'app.conf')}: permission denied`));
  t.regex(bad.stderr, /distrun: 1 host: 1 failed\n/);
  t.deepEqual(readdirSync(closed), []);
});
