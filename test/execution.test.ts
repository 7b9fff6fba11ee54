// Execution control: batches, --max-fail, and the summary of hosts never started.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fanoutWithinFileLimit } from '../src/cli/execution/fanout.js';
import { DISTRUN, cleanupAll, distrun, loopbackFleet, tempDir, distrunEnv, type Pki, type RunningAgent } from './helpers/fleet.js';

let pki: Pki;
let agent: RunningAgent;
let inventory: string;

test.before(async () => {
  ({ pki, agent, inventory } = await loopbackFleet(
    (port) => `hosts:\n  n[1-6]: { address: 127.0.0.1, port: ${port} }\ngroups:\n  six: ['n[1-6]']\n`,
  ));
});
test.after.always(cleanupAll);

const run = (...args: string[]) => distrun(['-i', inventory, '--pki', pki.dir, '-g', 'six', ...args]);

test('--batch 2: a batch starts only when the previous one has finished', async (t) => {
  const dir = tempDir();
  const log = join(dir, 'events');
  writeFileSync(log, '');
  // Alternate short and long commands, so that in a sliding window (plain fanout) a new
  // host would start while the long one of its batch still runs.
  const script =
    `k=$(ls ${dir} | wc -l); touch ${dir}/$$; echo start >> ${log}; ` +
    `if [ $((k % 2)) -eq 0 ]; then sleep 0.1; else sleep 0.8; fi; echo end >> ${log}`;
  const r = await run('--batch', '2', 'sh', '-c', script);
  t.is(r.code, 0, r.stderr);
  const events = readFileSync(log, 'utf8').trim().split('\n');
  t.is(events.filter((e) => e === 'start').length, 6);
  let running = 0;
  let startedInBatch = 0;
  for (const event of events) {
    if (event === 'start') {
      startedInBatch = running === 0 ? 1 : startedInBatch + 1;
      running += 1;
      t.true(startedInBatch <= 2, `a third host started before the batch ended: ${events.join(' ')}`);
    } else {
      running -= 1;
    }
  }
});

test('--batch takes a percentage', async (t) => {
  const r = await run('--batch', '50%', '--batch-wait', '0.1', 'true');
  t.is(r.code, 0, r.stderr);
  const bad = await run('--batch', '0', 'true');
  t.is(bad.code, 255);
  t.regex(bad.stderr, /--batch takes a whole number N >= 1 or a percentage/);
});

test('--max-fail stops starting hosts; the rest are reported as not started', async (t) => {
  const marker = `maxfail-${Math.floor(Math.random() * 1e9)}`;
  const r = await run('-f', '1', '--max-fail', '2', 'sh', '-c', `exit 3 # ${marker}`);
  t.is(r.code, 3, 'the exit code comes from the hosts that ran');
  const ran = agent.logs.filter((l) => l.msg === 'command' && JSON.stringify(l.argv).includes(marker));
  t.is(ran.length, 2);
  t.regex(r.stderr, /^distrun: 6 hosts: 2 failed, 4 not started$/m);
  t.regex(r.stderr, /^  not started: --max-fail reached \(2 hosts not ok\): n\[3-6\]$/m);
  const json = await run('-f', '1', '--max-fail', '1', '--json', 'false');
  const events = json.stdout
    .toString()
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { type: string; status?: string; code?: string });
  const ends = events.filter((e) => e.type !== 'start' && e.type !== 'stdout' && e.type !== 'stderr' && e.type !== 'summary');
  t.deepEqual(
    ends.map((e) => e.status),
    ['failed', 'skipped', 'skipped', 'skipped', 'skipped', 'skipped'],
  );
  t.is(ends[1]!.code, 'E_SKIPPED');
  t.is(events.filter((e) => e.type === 'start').length, 1, 'only one host was started');
});

test('the fanout fits the open-files limit', (t) => {
  const limits = join(tempDir(), 'limits');
  const notes: string[] = [];
  const note = (m: string) => notes.push(m);
  writeFileSync(
    limits,
    'Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 4096                 files\n',
  );
  t.is(fanoutWithinFileLimit(64, note, limits), 64);
  t.is(fanoutWithinFileLimit(5000, note, limits), 1024 - 32);
  t.deepEqual(notes, ['fanout lowered from 5000 to 992: the open-files limit is 1024 (raise it with ulimit -n)']);
  writeFileSync(limits, 'Max open files            unlimited            unlimited            files\n');
  t.is(fanoutWithinFileLimit(5000, note, limits), 5000);
  t.is(fanoutWithinFileLimit(5000, note, join(tempDir(), 'missing')), 5000);
});

test('under a low open-files limit every host still runs, with a note instead of EMFILE failures', (t) => {
  const many = join(tempDir(), 'hosts.yaml');
  writeFileSync(many, `hosts:\n  m[01-40]: { address: 127.0.0.1, port: ${agent.port} }\n`);
  const r = spawnSync('prlimit', ['--nofile=60:60', process.execPath, DISTRUN, '-i', many, '--pki', pki.dir, '-g', 'all', '-f', '40', 'echo', 'ok'], {
    encoding: 'utf8',
    env: distrunEnv(),
  });
  t.is(r.status, 0, r.stderr);
  t.is(r.stdout.split('\n').filter((line) => line.endsWith(': ok')).length, 40);
  t.regex(r.stderr, /fanout lowered from 40 to 28: the open-files limit is 60/);
});
