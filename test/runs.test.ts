// Run records: every run is recorded; `distrun runs` lists them; `distrun rerun` runs the
// same command again on just the failed or unreachable hosts.
import test from 'ava';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupAll, distrun, loopbackFleet, tempDir, testCacheHome, type Pki } from './helpers/fleet.js';

let pki: Pki;
let inventory: string;

test.before(async () => {
  // r4 is unreachable (nothing listens on port 1).
  ({ pki, inventory } = await loopbackFleet((port) =>
    `hosts:\n  r[1-3]: { address: 127.0.0.1, port: ${port} }\n  r4: { address: 127.0.0.1, port: 1 }\ngroups:\n  four: ['r[1-4]']\n`));
});
test.after.always(cleanupAll);

test.serial('a run is recorded with per-host status, exit code and output digests', async (t) => {
  const slots = tempDir();
  // The first host to get here fails; the others succeed.
  const r = await distrun(['-i', inventory, '--pki', pki.dir, '-g', 'four', 'sh', '-c', `if mkdir ${slots}/x 2>/dev/null; then echo bad; exit 7; fi; echo fine`]);
  t.is(r.code, 255);
  const dir = join(testCacheHome(), 'distrun', 'runs');
  const files = readdirSync(dir);
  t.is(files.length, 1);
  const record = JSON.parse(readFileSync(join(dir, files[0]!), 'utf8'));
  t.deepEqual(record.command, ['sh', '-c', `if mkdir ${slots}/x 2>/dev/null; then echo bad; exit 7; fi; echo fine`]);
  t.is(record.exitCode, 255);
  const byStatus = (status: string) => record.hosts.filter((h: { status: string }) => h.status === status);
  t.is(byStatus('ok').length, 2);
  t.is(byStatus('failed').length, 1);
  t.is(byStatus('failed')[0].exitCode, 7);
  t.is(byStatus('unreachable')[0].name, 'r4');
  t.is(byStatus('ok')[0].stdoutSha256, createHash('sha256').update('fine\n').digest('hex'));
  t.is(byStatus('failed')[0].stdoutSha256, createHash('sha256').update('bad\n').digest('hex'));
  t.is(byStatus('ok')[0].bytesOut, 5);

  const runs = await distrun(['runs']);
  t.is(runs.code, 0, runs.stderr);
  t.regex(runs.stdout.toString(), new RegExp(`^${files[0]!.slice(0, -5)}\\s+\\S+ \\S+\\s+4\\s+2\\s+2\\s+255\\s+sh -c 'if mkdir`, 'm'));
});

test.serial('rerun --failed runs the same command on the failed host only; --unreachable on the others', async (t) => {
  const failed = await distrun(['rerun', '--failed', '--pki', pki.dir]);
  t.is(failed.code, 0, failed.stderr);
  t.regex(failed.stdout.toString(), /^r[1-3]: fine\n$/);
  t.regex(failed.stderr, /running again on 1 host of \d{8}T\d{9}Z-[0-9a-f]{4}/);
  const runs = readdirSync(join(testCacheHome(), 'distrun', 'runs')).sort();
  const first = runs[0]!.slice(0, -5);
  const unreachable = await distrun(['rerun', '--unreachable', first, '--pki', pki.dir]);
  t.is(unreachable.code, 255);
  t.regex(unreachable.stderr, /r4 \(127\.0\.0\.1:1\): connection refused/);
  const none = await distrun(['rerun', '--pki', pki.dir]);
  t.is(none.code, 255);
  t.regex(none.stderr, /say which hosts to run again/);
  const unknown = await distrun(['rerun', '--failed', 'nosuchrun', '--pki', pki.dir]);
  t.regex(unknown.stderr, /no recorded run 'nosuchrun'/);
});

test.serial('a --script run is recorded as the script, and rerun sends the script again', async (t) => {
  const dir = tempDir();
  const script = join(dir, 'check.sh');
  writeFileSync(script, `#!/bin/sh\nif mkdir ${dir}/once 2>/dev/null; then echo "first $1"; exit 5; fi\necho "again $1"\n`);
  const r = await distrun(['-i', inventory, '--pki', pki.dir, '-g', 'four', '-x', 'r4', '--script', script, 'arg']);
  t.is(r.code, 5, r.stderr);
  const runs = await distrun(['runs', '-n', '1']);
  t.regex(runs.stdout.toString(), new RegExp(`--script '?${script.replace(/[.]/g, '\\.')}'? arg$`, 'm'));
  const again = await distrun(['rerun', '--failed', '--pki', pki.dir]);
  t.is(again.code, 0, again.stderr);
  t.regex(again.stdout.toString(), /^r[1-3]: again arg\n$/);
});
