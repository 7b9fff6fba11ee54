// A fleet of real hosts in network namespaces (test/helpers/netns-fleet.ts), and the
// faults a fleet brings: links that go down, agents killed or restarted, slow links.
// docs/testing.md says what each test proves. Needs root and iproute2; skipped otherwise.
import { PROTOCOL_VERSION } from '../src/protocol/constants.js';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { TEMP_PREFIX } from '../src/safe-paths.js';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import anyTest, { type TestFn } from 'ava';
import { cleanupAll, makePki, processesMatching, residentBytes, RUN_TOKEN, spawnDistrun, tempDir, waitFor } from './helpers/fleet.js';
import { NetnsFleet, netnsUnavailable, type NetnsHost } from './helpers/netns-fleet.js';

const unavailable = netnsUnavailable();
const test = anyTest as TestFn;
const serial = unavailable ? test.serial.skip : test.serial;
if (unavailable) console.log(`netns-faults: skipped: ${unavailable} (the tests need root and iproute2)`);

const HOSTS = 10;
let fleet: NetnsFleet;

test.before(async () => {
  if (unavailable) return;
  const pki = await makePki([]);
  // Short keepalives and grace periods keep the fault tests quick.
  fleet = await NetnsFleet.create({ hosts: HOSTS, pki, agentConfig: { keepaliveSeconds: 1, killGraceSeconds: 1, drainSeconds: 20 } });
});

test.after.always(async () => {
  fleet?.destroy();
  await cleanupAll();
});

const others = (...names: string[]): NetnsHost[] => fleet.hosts.filter((h) => !names.includes(h.name));
/** Lines of `host: text` output, sorted (hosts answer in any order). */
const sortedLines = (text: string): string[] => text.split('\n').filter(Boolean).sort();
/** A script that acts by host: `case $(uname -n) in CASES *) DEFAULT;; esac`. */
const byHost = (cases: string, fallback: string): string[] => ['--shell', `case $(uname -n) in ${cases} *) ${fallback};; esac`];

serial('the fleet: each host has its own address and hostname, and the root namespace has no route to them', async (t) => {
  const r = await fleet.distrun(['-g', 'fleet', 'uname', '-n']);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(
    sortedLines(r.stdout.toString()),
    fleet.hosts.map((h) => `${h.name}: ${h.name}`),
  );
  const routes = spawnSync('ip', ['route', 'get', fleet.hosts[0]!.address], { encoding: 'utf8' });
  t.notRegex(routes.stdout, /dev eth0 src 10\.231\./, 'the root namespace does not reach the fleet');
  t.notRegex(spawnSync('ip', ['-4', 'addr'], { encoding: 'utf8' }).stdout, /10\.231\./);
});

serial('a host whose link is down before connecting is unreachable within the connect timeout; the others run', async (t) => {
  const down = fleet.host('h02');
  fleet.linkDown(down);
  try {
    const r = await fleet.distrun(['-g', 'fleet', '--connect-timeout', '2', 'uname', '-n']);
    t.is(r.code, 255);
    t.deepEqual(
      sortedLines(r.stdout.toString()),
      others('h02').map((h) => `${h.name}: ${h.name}`),
    );
    t.regex(r.stderr, /h02 \([\d.]+:\d+\): (connect timed out after 2 s|host unreachable)/);
    t.regex(r.stderr, /10 hosts: 9 ok, 1 unreachable/);
  } finally {
    fleet.linkUp(down);
  }
});

serial('links cut mid-command: distrun reports the hosts lost, and the agents stop the orphaned commands', async (t) => {
  const [streaming, sleeping] = [fleet.host('h03'), fleet.host('h04')];
  // h03 streams without end, h04 sleeps long; the others stream for 3 s and finish. Every
  // host's shell has the whole script on its command line: `streams` finds them all.
  const streams = `streams-${RUN_TOKEN}`;
  const script = byHost(
    `h03) while :; do head -c 65536 /dev/zero; sleep 0.05; done;; h04) sleep $((600 + 17)).${RUN_TOKEN};;`,
    `: ${streams}; i=0; while [ $i -lt 30 ]; do head -c 65536 /dev/zero; sleep 0.1; i=$((i + 1)); done; echo; echo done`,
  );
  const sleeper = `sleep 617.${RUN_TOKEN}`;
  const since = { h03: streaming.agent!.logs.length, h04: sleeping.agent!.logs.length };
  const bytes = new Map<string, number>();
  const running = fleet.distrun(['-g', 'fleet', '--timeout', '120', '--outdir', tempDir(), ...script], {
    onStdout: (chunk) => bytes.set('all', (bytes.get('all') ?? 0) + chunk.length),
  });
  // (The sleep's argument is computed, so that distrun's own command line does not match.)
  t.true(await waitFor(() => processesMatching(sleeper).length > 0 && (bytes.get('all') ?? 0) > 1e6));
  fleet.linkDown(streaming);
  fleet.linkDown(sleeping);
  try {
    const r = await running;
    t.is(r.code, 255, r.stderr);
    // Found out by keepalives (1 s here), long before the 120 s time limit.
    t.regex(r.stderr, /h03 \([\d.]+:\d+\): connection lost: no word from the agent for \d+ s/);
    t.regex(r.stderr, /h04 \([\d.]+:\d+\): connection lost: no word from the agent for \d+ s/);
    t.regex(r.stderr, /10 hosts: 8 ok, 2 unreachable/);
    t.regex(r.stderr, /connection lost: no word from the agent for \d+ s \(host down or network cut\): h\[03-04\]/);
    // Each agent noticed its client was gone, and stopped the command, with the link still down.
    for (const host of [streaming, sleeping]) {
      const lost = await host.agent!.waitForLog('client lost; stopping command', since[host.name as 'h03' | 'h04']);
      t.regex(String(lost.reason), /client silent for \d+ s/);
    }
  } finally {
    fleet.linkUp(streaming);
    fleet.linkUp(sleeping);
  }
  t.true(
    await waitFor(() => processesMatching(sleeper).length === 0 && processesMatching(streams).length === 0),
    `left: ${[...processesMatching(sleeper), ...processesMatching(streams)].join('; ')}`,
  );
  // The audit trail says why the command ended. The agent writes the end record once the
  // command's process group is gone, which may be after the processes vanished: wait for it.
  const auditEnd = () =>
    sleeping
      .agent!.logs.slice(since.h04)
      .filter((l) => l.msg === 'audit')
      .map((l) => l.audit as { event: string; reason?: string })
      .find((record) => record.event === 'end');
  t.true(await waitFor(() => auditEnd() !== undefined), 'the agent audited the end of the command');
  t.regex(String(auditEnd()?.reason), /^client silent for 3 s/);
});

serial("an agent killed with SIGKILL mid-command: the host is reported, and its command's process group is gone", async (t) => {
  const victim = fleet.host('h05');
  // (The numbers are computed so that distrun's own command line does not match.)
  const script = `sleep $((600 + 18)).${RUN_TOKEN} & sleep $((600 + 19)).${RUN_TOKEN}; wait`;
  const run = spawnDistrun([...fleet.distrunArgs, '-H', 'h05', 'sh', '-c', script], {}, fleet.clientNetns);
  const [first, second] = [`sleep 618.${RUN_TOKEN}`, `sleep 619.${RUN_TOKEN}`];
  t.true(await waitFor(() => processesMatching(first).length > 0 && processesMatching(second).length > 0));
  victim.agent!.process.kill('SIGKILL');
  t.is(await run.exit, 255);
  t.regex(run.stderr(), /h05 \([\d.]+:\d+\): connection (closed before the command finished|reset by the agent)/);
  // The agent's orphan reaper (a helper shell) sends SIGTERM to the group once the agent is gone.
  t.true(
    await waitFor(() => processesMatching(first).length === 0 && processesMatching(second).length === 0),
    `left: ${[...processesMatching(first), ...processesMatching(second)].join('; ')}`,
  );
  await fleet.startAgent(victim);
  const again = await fleet.distrun(['-H', 'h05', 'uname', '-n']);
  t.is(again.stdout.toString(), 'h05: h05\n');
});

serial('an agent restarted between two runs: during the drain newcomers are refused with a reason; then the next run succeeds', async (t) => {
  const host = fleet.host('h06');
  const first = fleet.distrun(['-H', 'h06', 'sh', '-c', 'sleep 2; echo first']);
  const since = host.agent!.logs.length;
  await host.agent!.waitForLog('command', since);
  host.agent!.process.kill('SIGTERM');
  await host.agent!.waitForLog('draining', since);
  const late = await fleet.distrun(['-H', 'h06', 'echo', 'late']);
  t.is(late.code, 255);
  t.is(late.stdout.toString(), '');
  t.regex(late.stderr, /h06 \([\d.]+:\d+\): agent is shutting down/);
  const done = await first;
  t.is(done.code, 0, done.stderr);
  t.is(done.stdout.toString(), 'h06: first\n');
  await host.agent!.stop();
  t.is(host.agent!.process.exitCode, 0);
  await fleet.startAgent(host);
  const second = await fleet.distrun(['-H', 'h06', 'echo', 'second']);
  t.is(second.code, 0, second.stderr);
  t.is(second.stdout.toString(), 'h06: second\n');
});

serial("200 MB through a rate-limited link (tbf): byte-exact, and the agent's memory stays bounded", async (t) => {
  const host = fleet.host('h07');
  const file = join(tempDir(), 'random.bin');
  spawnSync('sh', ['-c', `head -c 200000000 /dev/urandom > ${file}`]);
  const expected = createHash('sha256');
  expected.update(spawnSync('cat', [file], { maxBuffer: 300e6 }).stdout);
  fleet.limitRate(host, '400mbit');
  const pid = host.agent!.process.pid!;
  let peak = residentBytes(pid);
  const sampler = setInterval(() => {
    peak = Math.max(peak, residentBytes(pid));
  }, 100);
  try {
    const got = createHash('sha256');
    let received = 0;
    const r = await fleet.distrun(['-H', 'h07', '-N', 'cat', file], {
      onStdout: (chunk) => {
        received += chunk.length;
        got.update(chunk);
      },
    });
    t.is(r.code, 0, r.stderr);
    t.is(received, 200_000_000);
    t.is(got.digest('hex'), expected.digest('hex'));
  } finally {
    clearInterval(sampler);
    fleet.unlimitRate(host);
  }
  // The output is never buffered whole: the command waits on its pipe while the link is slow.
  t.true(peak < 150e6, `agent peak RSS ${(peak / 2 ** 20).toFixed(0)} MiB`);
  t.log(`agent peak RSS ${(peak / 2 ** 20).toFixed(0)} MiB`);
});

serial('10 hosts, one slow, one failing, one unreachable: gathered output, summary and exit code are exact', async (t) => {
  const unreachable = fleet.host('h10');
  fleet.linkDown(unreachable);
  try {
    const r = await fleet.distrun([
      '-g',
      'fleet',
      '-b',
      '--connect-timeout',
      '2',
      ...byHost('h08) sleep 3; echo slow;; h09) echo failing >&2; exit 3;;', 'echo fine'),
    ]);
    t.is(r.code, 255);
    // clush -b's layout: identical outputs once, under folded names, largest group first.
    t.is(
      r.stdout.toString(),
      [
        '---------------',
        'h[01-07] (7)',
        '---------------',
        'fine',
        '---------------',
        'h08 (1)',
        '---------------',
        'slow',
        '---------------',
        'h09 (1) exit code 3',
        '---------------',
        '',
      ].join('\n'),
    );
    const why = '(connect timed out after 2 s|host unreachable)';
    t.regex(
      r.stderr,
      new RegExp(
        `^distrun: h10 \\([\\d.]+:\\d+\\): ${why}\nfailing\n` +
          `distrun: 10 hosts: 8 ok, 1 failed, 1 unreachable\n  exit code 3: h09\n  ${why}: h10\n$`,
      ),
    );
  } finally {
    fleet.linkUp(unreachable);
  }
});

serial("distrun ping over the namespaces reports each host's state", async (t) => {
  const [stopped, cut] = [fleet.host('h01'), fleet.host('h02')];
  await stopped.agent!.stop();
  fleet.linkDown(cut);
  try {
    const r = await fleet.distrun(['ping', '-g', 'fleet', '--connect-timeout', '2', '--json']);
    t.is(r.code, 255);
    const states = new Map(
      r.stdout
        .toString()
        .trim()
        .split('\n')
        .map((line) => {
          const record = JSON.parse(line) as { host: string; status: string; error: { code: string; message: string } | null };
          return [record.host, record];
        }),
    );
    t.is(states.size, HOSTS);
    t.like(states.get('h01'), { status: 'unreachable' });
    t.regex(String(states.get('h01')?.error?.message), /connection refused/);
    t.like(states.get('h02'), { status: 'unreachable' });
    t.regex(String(states.get('h02')?.error?.message), /connect timed out|host unreachable/);
    for (const host of others('h01', 'h02')) t.like(states.get(host.name), { status: 'ok', protocol: PROTOCOL_VERSION });
  } finally {
    fleet.linkUp(cut);
    await fleet.startAgent(stopped);
  }
});

/** Whether a host's /srv (seen from here) holds a temporary file of a copy. */
const copying = (host: NetnsHost): boolean => readdirSync(join(host.root, 'srv'), { recursive: true }).some((n) => String(n).includes(TEMP_PREFIX));

serial('copy: a 50 MB random file and a tree to 10 hosts, byte-exact with modes on every host; again: unchanged on all', async (t) => {
  const dir = tempDir();
  const blob = join(dir, 'blob.bin');
  const data = randomBytes(50 * 1024 * 1024);
  writeFileSync(blob, data, { mode: 0o600 });
  const tree = join(dir, 'tree');
  mkdirSync(join(tree, 'a', 'b'), { recursive: true });
  writeFileSync(join(tree, 'a', 'b', 'run.sh'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
  symlinkSync('a/b/run.sh', join(tree, 'run'));
  const r = await fleet.distrun(['-g', 'fleet', 'copy', '-r', blob, tree, '/srv']);
  t.is(r.code, 0, r.stderr);
  const digest = createHash('sha256').update(data).digest('hex');
  for (const host of fleet.hosts) {
    const srv = join(host.root, 'srv');
    t.is(
      createHash('sha256')
        .update(readFileSync(join(srv, 'blob.bin')))
        .digest('hex'),
      digest,
      host.name,
    );
    t.is(statSync(join(srv, 'blob.bin')).mode & 0o777, 0o600);
    t.is(statSync(join(srv, 'tree', 'a', 'b', 'run.sh')).mode & 0o777, 0o755);
    t.is(readlinkSync(join(srv, 'tree', 'run')), 'a/b/run.sh');
    t.false(copying(host));
  }
  const again = await fleet.distrun(['-g', 'fleet', 'copy', '-r', blob, tree, '/srv']);
  t.is(again.code, 0, again.stderr);
  t.deepEqual(
    sortedLines(again.stdout.toString()),
    fleet.hosts.map((h) => `${h.name}: unchanged (6 unchanged)`),
  );
  t.is(again.stderr, 'distrun: 10 hosts: 10 unchanged\n');
});

serial(
  'copy: a link cut mid-transfer: that host is reported lost, the others complete, and it keeps neither a partial file nor a temporary one',
  async (t) => {
    const blob = join(tempDir(), 'big.bin');
    writeFileSync(blob, randomBytes(8 * 1024 * 1024));
    const cut = fleet.host('h06');
    // What the client sends h06 goes at 200 kbit/s (8 MB would take minutes): the cut comes mid-file.
    fleet.limitRateTo(cut, '200kbit');
    try {
      const run = spawnDistrun([...fleet.distrunArgs, '-g', 'fleet', 'copy', blob, '/srv'], {}, fleet.clientNetns);
      t.true(await waitFor(() => copying(cut), 60_000), 'h06 has started writing');
      fleet.linkDown(cut);
      t.is(await run.exit, 255, run.stderr());
      t.regex(run.stderr(), /h06 \([\d.]+:\d+\): connection lost: no word from the agent for 3 s/);
      t.regex(run.stderr(), /10 hosts: 9 changed, 1 unreachable/);
      for (const host of others('h06')) t.is(statSync(join(host.root, 'srv', 'big.bin')).size, 8 * 1024 * 1024);
      // The agent hears nothing either: it drops the session and stops the receiver, which removes its temporary file.
      t.true(await waitFor(() => !copying(cut), 30_000), 'the temporary file is removed');
      t.false(existsSync(join(cut.root, 'srv', 'big.bin')), 'no partial target');
    } finally {
      fleet.linkUp(cut);
      fleet.unlimitRateTo();
    }
  },
);

serial('copy: Ctrl-C midway stops every host; none keeps a partial or temporary file, and a file that was there stays as it was', async (t) => {
  const blob = join(tempDir(), 'big.bin');
  writeFileSync(blob, randomBytes(8 * 1024 * 1024));
  const slow = fleet.host('h07');
  writeFileSync(join(slow.root, 'srv', 'keep.bin'), 'the old content');
  fleet.limitRateTo(slow, '200kbit');
  try {
    const run = spawnDistrun([...fleet.distrunArgs, '-g', 'fleet', 'copy', blob, '/srv/keep.bin'], {}, fleet.clientNetns);
    t.true(await waitFor(() => copying(slow), 60_000));
    run.child.kill('SIGINT');
    t.is(await run.exit, 130, run.stderr());
    t.regex(run.stderr(), /h07 \([\d.]+:\d+\): aborted by user/);
    t.true(await waitFor(() => !copying(slow), 30_000), 'the temporary file is removed');
    t.is(readFileSync(join(slow.root, 'srv', 'keep.bin'), 'utf8'), 'the old content');
  } finally {
    fleet.unlimitRateTo();
  }
});

serial(
  'copy --timeout: a host still receiving when time is up is stopped and reported (exit 124); its temporary file is removed; the others change',
  async (t) => {
    const blob = join(tempDir(), 'big.bin');
    writeFileSync(blob, randomBytes(8 * 1024 * 1024));
    const slow = fleet.host('h08');
    fleet.limitRateTo(slow, '200kbit');
    try {
      // 8 MB at 200 kbit/s takes minutes; the others are done long before the limit.
      const r = await fleet.distrun(['-g', 'fleet', 'copy', '--timeout', '20', blob, '/srv/timed.bin']);
      t.is(r.code, 124, r.stderr);
      t.regex(r.stderr, /10 hosts: 9 changed, 1 timed out\n/);
      t.regex(r.stderr, /timed out \(command killed\): h08/);
      for (const host of others('h08')) t.is(statSync(join(host.root, 'srv', 'timed.bin')).size, 8 * 1024 * 1024);
      t.true(await waitFor(() => !copying(slow), 30_000), 'the temporary file is removed');
      t.false(existsSync(join(slow.root, 'srv', 'timed.bin')));
    } finally {
      fleet.unlimitRateTo();
    }
  },
);

serial(
  'fetch: /etc/hostname from 10 hosts into DIR/HOST/etc/hostname, each with its own name; a missing path fails every host with the reason',
  async (t) => {
    const local = tempDir();
    const r = await fleet.distrun(['-g', 'fleet', 'fetch', '/etc/hostname', local]);
    t.is(r.code, 0, r.stderr);
    t.deepEqual(readdirSync(local).sort(), fleet.hosts.map((h) => h.name).sort());
    for (const host of fleet.hosts) t.is(readFileSync(join(local, host.name, 'etc', 'hostname'), 'utf8'), `${host.name}\n`);
    t.is(r.stderr, 'distrun: 10 hosts: 10 fetched\n');
    const missing = await fleet.distrun(['-g', 'fleet', 'fetch', '/srv/no-such-file', local]);
    t.is(missing.code, 1);
    t.regex(missing.stderr, /10 hosts: 10 failed\n  \/srv\/no-such-file: no such file or directory: h\[01-10\]\n/);
  },
);

serial('fetch: Ctrl-C while a host is still sending leaves neither a partial nor a temporary file; the hosts done keep theirs', async (t) => {
  const slow = fleet.host('h09');
  writeFileSync(join(slow.root, 'srv', 'big.bin'), randomBytes(8 * 1024 * 1024));
  for (const host of others('h09')) writeFileSync(join(host.root, 'srv', 'big.bin'), 'small');
  // What h09 sends goes at 200 kbit/s (tbf on its side): 8 MB would take minutes.
  fleet.limitRate(slow, '200kbit');
  const local = tempDir();
  const receiving = (): boolean =>
    existsSync(join(local, 'h09')) && readdirSync(join(local, 'h09'), { recursive: true }).some((n) => String(n).includes(TEMP_PREFIX));
  try {
    const run = spawnDistrun([...fleet.distrunArgs, '-g', 'fleet', 'fetch', '/srv/big.bin', local], {}, fleet.clientNetns);
    const othersDone = (): boolean => others('h09').every((host) => existsSync(join(local, host.name, 'srv', 'big.bin')));
    t.true(await waitFor(() => receiving() && othersDone(), 60_000), 'h09 has started arriving, the others are done');
    run.child.kill('SIGINT');
    t.is(await run.exit, 130, run.stderr());
    t.regex(run.stderr(), /h09 \([\d.]+:\d+\): aborted by user/);
    t.false(receiving(), 'no temporary file left');
    t.false(existsSync(join(local, 'h09', 'srv', 'big.bin')), 'no partial file');
    for (const host of others('h09')) t.is(readFileSync(join(local, host.name, 'srv', 'big.bin'), 'utf8'), 'small');
  } finally {
    fleet.unlimitRate(slow);
  }
});

serial('nothing is left behind: destroying the fleet removes every namespace', (t) => {
  fleet.destroy();
  t.deepEqual(NetnsFleet.leftovers(), []);
});
