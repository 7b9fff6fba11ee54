// distrun fetch end to end: real agents on loopback, the real distrun binary, the agents'
// file senders reading real files (as root and as an unprivileged run-as user), written
// under LOCALDIR/HOST/<remote path>.
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { jsonLines } from './helpers/json-lines.js';
import { cleanupAll, noTemporaries, distrun, startAgent, tempDir, trioFleet, waitFor, type Pki, type RunningAgent } from './helpers/fleet.js';
import { sha256Hex as sha } from './helpers/digest.js';

let pki: Pki;
let agents: RunningAgent[];
let on: (group: string, ...args: string[]) => string[];

test.before(async () => {
  ({ pki, agents, on } = await trioFleet());
});

test.after.always(cleanupAll);

/** An inventory of HOSTS, all on one agent's port. */
function inventoryFor(agent: RunningAgent, hosts: string[]): string {
  const file = join(tempDir(), 'hosts.yaml');
  writeFileSync(file, `hosts:\n${hosts.map((h) => `  ${JSON.stringify(h)}: { address: 127.0.0.1, port: ${agent.port} }\n`).join('')}`);
  return file;
}

test('a binary file from two hosts: LOCALDIR/h1/<path> and LOCALDIR/h2/<path>, byte-exact with its mode; exit code 0', async (t) => {
  const remote = join(tempDir(), 'blob.bin');
  const data = Buffer.concat([randomBytes(2 * 1024 * 1024 + 7), Buffer.alloc(4096)]);
  writeFileSync(remote, data);
  chmodSync(remote, 0o640);
  const local = tempDir();
  const r = await distrun(on('trio', '-x', 'h3', 'fetch', remote, local));
  t.is(r.code, 0, r.stderr);
  for (const host of ['h1', 'h2']) {
    const got = join(local, host, remote);
    t.is(sha(readFileSync(got)), sha(data));
    t.is(statSync(got).mode & 0o777, 0o640);
    t.regex(r.stdout.toString(), new RegExp(`^${host}: fetched ${remote}$`, 'm'));
    t.regex(r.stdout.toString(), new RegExp(`^${host}: fetched \\(1 fetched\\)$`, 'm'));
  }
  t.deepEqual(readdirSync(local).sort(), ['h1', 'h2']);
  t.true(noTemporaries(local));
  t.regex(r.stderr, /distrun: 2 hosts: 2 fetched\n/);
});

test('a tree with -r: nested and empty directories, a link fetched as a link, odd names; without -r a directory is refused', async (t) => {
  const src = join(tempDir(), 'site');
  mkdirSync(join(src, 'conf', 'deep'), { recursive: true });
  mkdirSync(join(src, 'empty'));
  writeFileSync(join(src, 'conf', 'a b\nü.txt'), 'spaces, newline, UTF-8');
  writeFileSync(join(src, 'conf', 'deep', 'zero'), Buffer.alloc(0));
  symlinkSync('/etc/passwd', join(src, 'current'));
  const local = tempDir();
  const refused = await distrun(on('one', 'fetch', src, local));
  t.is(refused.code, 1);
  t.regex(refused.stderr, /h1: failed .*site: is a directory \(add -r to fetch it\)/);
  const r = await distrun(on('one', 'fetch', '-r', src, local));
  t.is(r.code, 0, r.stderr);
  const here = join(local, 'h1', src);
  t.is(readFileSync(join(here, 'conf', 'a b\nü.txt'), 'utf8'), 'spaces, newline, UTF-8');
  t.is(statSync(join(here, 'conf', 'deep', 'zero')).size, 0);
  t.true(statSync(join(here, 'empty')).isDirectory());
  t.is(readlinkSync(join(here, 'current')), '/etc/passwd', 'a link is fetched as a link, never followed');
  t.regex(r.stdout.toString(), /^h1: fetched \(7 fetched\)$/m);
});

test('a missing path fails that host with the reason; /dev/zero is refused at once; a /proc file stops at --max-bytes', async (t) => {
  const local = tempDir();
  const missing = await distrun(on('one', 'fetch', '/nonexistent/distrun-file', local));
  t.is(missing.code, 1);
  t.regex(missing.stderr, /h1: failed \/nonexistent\/distrun-file: no such file or directory/);
  t.regex(missing.stderr, /distrun: 1 host: 1 failed\n/);
  const zero = await distrun(on('one', 'fetch', '/dev/zero', local));
  t.is(zero.code, 1);
  t.regex(zero.stderr, /h1: failed \/dev\/zero: is a character device: only regular files, directories and links are fetched/);
  const status = await distrun(on('one', 'fetch', '--max-bytes', '100', '/proc/self/status', local));
  t.is(status.code, 1, status.stderr);
  t.regex(status.stderr, /h1: failed \/proc\/\d+\/status: exceeds --max-bytes \(100 bytes in all\)/);
  t.true(noTemporaries(local));
  const whole = await distrun(on('one', 'fetch', '/proc/self/status', local));
  t.is(whole.code, 0, whole.stderr);
  const pid = readdirSync(join(local, 'h1', 'proc')).find((name) => existsSync(join(local, 'h1', 'proc', name, 'status')));
  t.regex(readFileSync(join(local, 'h1', 'proc', pid!, 'status'), 'utf8'), /^Name:/, 'a /proc file is read to EOF whatever its st_size says');
});

// The native inventory refuses control characters and `/` in names already (the writer's
// own check of those is in fetch-writer.test.ts); a name with `..` in it passes it.
test('a host name that cannot be a directory name is refused before anything is fetched, naming the host', async (t) => {
  const hostile = inventoryFor(agents[0]!, ['ok', 'up..there']);
  const local = tempDir();
  const r = await distrun(['-i', hostile, '--pki', pki.dir, '-H', 'ok,up..there', 'fetch', '/etc/hostname', local]);
  t.is(r.code, 255);
  t.regex(r.stderr, /host "up\.\.there" cannot be a directory name under .*: it contains \.\.; nothing was fetched/);
  t.deepEqual(readdirSync(local), []);
});

test('policy fetch: paths: inside allowed, outside failed as denied with an audit record; a client without fetch rights is denied', async (t) => {
  const allowed = tempDir();
  const other = tempDir();
  writeFileSync(join(allowed, 'ok.txt'), 'ok');
  writeFileSync(join(other, 'secret.txt'), 'no');
  const agent = await startAgent(pki, 'agent1', { config: { policy: [{ clients: ['*'], commands: ['true'], fetch: [`${allowed}/*`] }] } });
  const inv = inventoryFor(agent, ['p1']);
  const local = tempDir();
  const r = await distrun(['-i', inv, '--pki', pki.dir, '-H', 'p1', 'fetch', join(allowed, 'ok.txt'), join(other, 'secret.txt'), local]);
  t.is(r.code, 1, r.stderr);
  t.is(readFileSync(join(local, 'p1', allowed, 'ok.txt'), 'utf8'), 'ok');
  t.false(existsSync(join(local, 'p1', other)));
  t.regex(r.stderr, new RegExp(`p1: failed ${join(other, 'secret.txt')}: is not a path this client may read`));
  const audit = () => agent.logs.filter((l) => l.msg === 'audit').map((l) => l.audit as Record<string, unknown>);
  t.true(await waitFor(() => audit().some((l) => l.event === 'end')), JSON.stringify(audit()));
  t.like(
    audit().find((l) => l.event === 'file' && l.outcome === 'failed'),
    { path: join(other, 'secret.txt'), reason: 'is not a path this client may read' },
  );
  t.like(
    audit().find((l) => l.event === 'file' && l.outcome === 'sent'),
    { path: join(allowed, 'ok.txt'), size: 2, sha256: sha('ok') },
  );
  const closed = await startAgent(pki, 'agent1', { config: { policy: [{ clients: ['*'], commands: ['true'], copy: ['/tmp/*'] }] } });
  const denied = await distrun(['-i', inventoryFor(closed, ['p2']), '--pki', pki.dir, '-H', 'p2', 'fetch', join(allowed, 'ok.txt'), local]);
  t.is(denied.code, 255);
  t.regex(denied.stderr, /fetching files is not allowed for this client/);
  const deniedRecord = () => closed.logs.map((l) => l.audit as Record<string, unknown> | undefined).find((a) => a?.event === 'denied');
  t.true(await waitFor(() => deniedRecord() !== undefined));
  t.like(deniedRecord(), { fetch: { paths: [join(allowed, 'ok.txt')], recursive: false }, reason: 'fetching files is not allowed for this client' });
});

test('run as nobody: a 0600 root file cannot be read; a world-readable one can', async (t) => {
  const dir = tempDir();
  chmodSync(dir, 0o755);
  writeFileSync(join(dir, 'root-only'), 'secret');
  chmodSync(join(dir, 'root-only'), 0o600);
  writeFileSync(join(dir, 'public'), 'public');
  chmodSync(join(dir, 'public'), 0o644);
  const limited = await startAgent(pki, 'agent1', { config: { runAs: 'nobody' } });
  const local = tempDir();
  const r = await distrun([
    '-i',
    inventoryFor(limited, ['n1']),
    '--pki',
    pki.dir,
    '-H',
    'n1',
    'fetch',
    join(dir, 'root-only'),
    join(dir, 'public'),
    local,
  ]);
  t.is(r.code, 1, r.stderr);
  t.regex(r.stderr, new RegExp(`n1: failed ${join(dir, 'root-only')}: permission denied`));
  t.is(readFileSync(join(local, 'n1', dir, 'public'), 'utf8'), 'public');
  t.false(existsSync(join(local, 'n1', dir, 'root-only')));
});

test('--dry-run says where the files would go and fetches nothing', async (t) => {
  const local = join(tempDir(), 'not-yet');
  const r = await distrun(on('trio', 'fetch', '-n', '/etc/hostname', local));
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout.toString(), new RegExp(`^/etc/hostname → ${local}/HOST/etc/hostname$`, 'm'));
  t.false(existsSync(local));
});

test('--json: a file event per entry with where it went, each host end with its counts, the summary; rerun --failed fetches again from the host that failed', async (t) => {
  const dir = tempDir();
  const remote = join(dir, 'report.txt');
  writeFileSync(remote, 'ready\n');
  chmodSync(remote, 0o600);
  const limited = await startAgent(pki, 'agent2', { config: { runAs: 'nobody' } });
  const inv = join(tempDir(), 'hosts.yaml');
  writeFileSync(inv, `hosts:\n  root1: { address: 127.0.0.1, port: ${agents[0]!.port} }\n  nobody1: { address: 127.0.0.1, port: ${limited.port} }\n`);
  const env = { XDG_CACHE_HOME: tempDir() };
  const local = tempDir();
  const r = await distrun(['-i', inv, '--pki', pki.dir, '-g', 'all', 'fetch', '--json', remote, local], { env });
  t.is(r.code, 1, r.stderr);
  const events = jsonLines(r.stdout);
  t.like(
    events.find((e) => e.type === 'file' && e.host === 'root1'),
    { path: remote, outcome: 'fetched', local: join(local, 'root1', remote), size: 6, sha256: sha('ready\n') },
  );
  t.like(
    events.find((e) => e.type === 'file' && e.host === 'nobody1'),
    { outcome: 'failed', message: 'permission denied' },
  );
  t.like(
    events.find((e) => e.type === 'exit' && e.host === 'root1'),
    { status: 'ok', fetched: 1, failed: 0 },
  );
  t.like(
    events.find((e) => e.type === 'exit' && e.host === 'nobody1'),
    { status: 'failed', exitCode: 1, fetched: 0, failed: 1 },
  );
  t.like(events.at(-1), { type: 'summary', hosts: 2, ok: 1, failed: 1, fetched: 1, exitCode: 1 });
  // The file (and its directory) opened to the run-as user; rerun --failed fetches from nobody1 alone.
  chmodSync(dir, 0o755);
  chmodSync(remote, 0o644);
  const again = await distrun(['rerun', '--failed', '--pki', pki.dir], { env });
  t.is(again.code, 0, again.stderr);
  t.regex(again.stderr, /running again on 1 host of \S+: fetch --max-bytes 1073741824 /);
  t.is(again.stdout.toString(), `nobody1: fetched ${remote}\nnobody1: fetched (1 fetched)\n`);
  t.is(readFileSync(join(local, 'nobody1', remote), 'utf8'), 'ready\n');
});
