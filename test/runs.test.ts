// Run records: every run is recorded; `distrun runs` lists them; `distrun rerun` runs the
// same command again on just the failed or unreachable hosts.
import test from 'ava';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupAll, distrun, loopbackFleet, startAgent, tempDir, testCacheHome, type Pki, type RunningAgent } from './helpers/fleet.js';

let pki: Pki;
let inventory: string;
let agent: RunningAgent;

test.before(async () => {
  // r4 is unreachable (nothing listens on port 1).
  ({ pki, inventory, agent } = await loopbackFleet(
    (port) => `hosts:\n  r[1-3]: { address: 127.0.0.1, port: ${port} }\n  r4: { address: 127.0.0.1, port: 1 }\ngroups:\n  four: ['r[1-4]']\n`,
  ));
});
test.after.always(cleanupAll);

test.serial('a run is recorded with per-host status, exit code and output digests', async (t) => {
  const slots = tempDir();
  // The first host to get here fails; the others succeed.
  const r = await distrun([
    '-i',
    inventory,
    '--pki',
    pki.dir,
    '-g',
    'four',
    'sh',
    '-c',
    `if mkdir ${slots}/x 2>/dev/null; then echo bad; exit 7; fi; echo fine`,
  ]);
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
  t.regex(runs.stdout.toString(), new RegExp(`^${files[0]!.slice(0, -5)}\\s+\\S+ \\S+\\s+4\\s+2\\s+2\\s+255\\s+-\\s+sh -c 'if mkdir`, 'm'));
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

test.serial(
  'reruns follow the chain back: --unreachable after --failed still finds the host the first run could not reach; then nothing is left',
  async (t) => {
    const dir = tempDir();
    // c3's agent is down for the first runs, then comes back on the same port.
    const down = await startAgent(pki, 'agent1');
    await down.stop();
    const chainInventory = join(dir, 'hosts.yaml');
    writeFileSync(
      chainInventory,
      `hosts:\n  c[1-2]: { address: 127.0.0.1, port: ${agent.port} }\n  c3: { address: 127.0.0.1, port: ${down.port} }\n`,
    );
    // Until the test creates `fixed`, the first host to claim the slot fails.
    const first = await distrun([
      '-i',
      chainInventory,
      '--pki',
      pki.dir,
      '-H',
      'c[1-3]',
      'sh',
      '-c',
      `test -e ${dir}/fixed && exit 0; mkdir ${dir}/claim 2>/dev/null && exit 3; exit 0`,
    ]);
    t.is(first.code, 255, first.stderr);
    t.regex(first.stderr, /exit code 3: c[12]\n/);
    const newest = () =>
      readdirSync(join(testCacheHome(), 'distrun', 'runs'))
        .sort()
        .at(-1)!
        .slice(0, -5);
    const run1 = newest();

    writeFileSync(join(dir, 'fixed'), '');
    const failed = await distrun(['rerun', '--failed', '--pki', pki.dir]);
    t.is(failed.code, 0, failed.stderr);
    t.regex(failed.stderr, new RegExp(`running again on 1 host of ${run1}:`));
    const run2 = newest();

    const down2 = await startAgent(pki, 'agent1', { config: { port: down.port } });
    // The newest run (run2) had only the failed host: the chain still knows c3 was unreachable.
    const unreachable = await distrun(['rerun', '--unreachable', '--pki', pki.dir]);
    t.is(unreachable.code, 0, unreachable.stderr);
    t.regex(unreachable.stderr, new RegExp(`running again on 1 host of ${run2}, each in its latest state over 2 runs back to ${run1}:`));
    const run3 = newest();
    const record3 = JSON.parse(readFileSync(join(testCacheHome(), 'distrun', 'runs', `${run3}.json`), 'utf8'));
    t.is(record3.version, 4);
    t.is(record3.parent, run2);
    t.deepEqual(
      record3.hosts.map((h: { name: string; status: string }) => `${h.name} ${h.status}`),
      ['c3 ok'],
    );

    const nothing = await distrun(['rerun', '--failed', '--unreachable', '--pki', pki.dir]);
    t.is(nothing.code, 0, nothing.stderr);
    t.is(nothing.stderr, `distrun: nothing to run again: all 3 hosts succeeded (run ${run3})\n`);
    t.is(newest(), run3, 'nothing ran, so nothing was recorded');

    const runs = await distrun(['runs', '-n', '3']);
    t.regex(runs.stdout.toString(), /^RUN +STARTED +HOSTS +OK +NOT OK +EXIT +FROM +COMMAND$/m);
    t.regex(runs.stdout.toString(), new RegExp(`^${run3} .* ${run2}  sh -c`, 'm'));
    t.regex(runs.stdout.toString(), new RegExp(`^${run2} .* ${run1}  sh -c`, 'm'));
    t.regex(runs.stdout.toString(), new RegExp(`^${run1} .* -  +sh -c`, 'm'));
    await down2.stop();
  },
);
