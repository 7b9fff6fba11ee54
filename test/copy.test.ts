// distrun copy end to end: real agents on loopback, the real distrun binary, the agents'
// file receivers writing real files (as root and as an unprivileged run-as user).
import test from 'ava';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  mkdirSync,
  rmSync,
  truncateSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { cleanupAll, noTemporaries, trioFleet, distrun, startAgent, tempDir, type Pki, type RunningAgent } from './helpers/fleet.js';
import { jsonLines } from './helpers/json-lines.js';
import { sha256Hex as sha } from './helpers/digest.js';

let pki: Pki;
let agents: RunningAgent[];

let on: (group: string, ...args: string[]) => string[];

test.before(async () => {
  ({ pki, agents, on } = await trioFleet());
});

test.after.always(cleanupAll);

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

test('a file of the same size with other bytes on the host: offered, found different, sent; the copy reports the old and new sha256', async (t) => {
  const dir = tempDir();
  const src = join(dir, 'same-size.bin');
  const dest = tempDir();
  const old = randomBytes(1024 * 1024);
  const fresh = randomBytes(1024 * 1024);
  writeFileSync(join(dest, 'same-size.bin'), old);
  writeFileSync(src, fresh);
  const r = await distrun(on('h1', '--json', 'copy', src, dest));
  t.is(r.code, 0, r.stderr);
  const file = jsonLines(r.stdout).find((e) => e.type === 'file');
  t.like(file, { outcome: 'changed', sha256: sha(fresh), previous: sha(old) });
  t.is(sha(readFileSync(join(dest, 'same-size.bin'))), sha(fresh));
  t.true(noTemporaries(dest));
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

test('--json: start, a file event per entry, each host end with its counts, the summary; rerun --failed copies again on the host that failed', async (t) => {
  const src = join(tempDir(), 'motd');
  writeFileSync(src, 'welcome\n');
  const dest = tempDir();
  chmodSync(dest, 0o755);
  const limited = await startAgent(pki, 'agent2', { config: { runAs: 'nobody' } });
  const inv = join(tempDir(), 'hosts.yaml');
  writeFileSync(inv, `hosts:\n  nobody1: { address: 127.0.0.1, port: ${limited.port} }\n  root1: { address: 127.0.0.1, port: ${agents[0]!.port} }\n`);
  const sel = ['-i', inv, '--pki', pki.dir, '-g', 'all'];
  // One host after the other, nobody1 first: root1's file would otherwise be there, identical, for nobody1 to leave unchanged.
  // Run records of its own: another test's copy is not the newest run here.
  const env = { XDG_CACHE_HOME: tempDir() };
  const r = await distrun([...sel, 'copy', '--batch', '1', '--json', src, dest], { env });
  t.is(r.code, 1, r.stderr);
  const events = jsonLines(r.stdout);
  const of = (host: string) => events.filter((e) => e.host === host).map((e) => e.type);
  t.deepEqual(of('root1'), ['start', 'file', 'exit']);
  t.deepEqual(of('nobody1'), ['start', 'file', 'exit']);
  t.like(
    events.find((e) => e.type === 'file' && e.host === 'root1'),
    { path: join(dest, 'motd'), outcome: 'changed', what: 'content', size: 8, sha256: sha('welcome\n'), previous: null },
  );
  t.like(
    events.find((e) => e.type === 'file' && e.host === 'nobody1'),
    { outcome: 'failed', code: 'E_FILE', message: 'permission denied' },
  );
  t.like(
    events.find((e) => e.type === 'exit' && e.host === 'root1'),
    { status: 'ok', exitCode: 0, changed: 1, unchanged: 0, failed: 0 },
  );
  t.like(
    events.find((e) => e.type === 'exit' && e.host === 'nobody1'),
    { status: 'failed', exitCode: 1, changed: 0, failed: 1 },
  );
  t.like(events.at(-1), { type: 'summary', hosts: 2, ok: 1, failed: 1, changed: 1, unchanged: 0, exitCode: 1 });
  // The directory is opened to the run-as user (and root1's copy taken away); rerun --failed repeats the copy on nobody1 alone.
  chownSync(dest, 65534, 65534);
  rmSync(join(dest, 'motd'));
  const again = await distrun(['rerun', '--failed', '--pki', pki.dir], { env });
  t.is(again.code, 0, again.stderr);
  t.regex(again.stderr, new RegExp(`running again on 1 host of \\S+: copy ${src.replace(/[/.]/g, '\\$&')} ${dest.replace(/[/.]/g, '\\$&')}`));
  t.is(again.stdout.toString(), `nobody1: changed ${join(dest, 'motd')}\nnobody1: changed (1 changed)\n`);
  t.is(statSync(join(dest, 'motd')).uid, 65534);
  const nothing = await distrun(['rerun', '--failed', '--pki', pki.dir], { env });
  t.is(nothing.code, 0);
  t.regex(nothing.stderr, /nothing to run again|every host/);
});

test("policy: copy only below the rule's paths (denied elsewhere, with the reason), --owner only where the rule says owner: true", async (t) => {
  const allowed = tempDir();
  const elsewhere = tempDir();
  const src = join(tempDir(), 'conf');
  writeFileSync(src, 'x=1\n');
  const rule = { clients: ['admin'], commands: ['true'], copy: [`${allowed}/*`] };
  const strict = await startAgent(pki, 'agent3', { config: { policy: [rule] } });
  const owning = await startAgent(pki, 'agent3', { config: { policy: [{ ...rule, owner: true }] } });
  const inv = join(tempDir(), 'hosts.yaml');
  writeFileSync(inv, `hosts:\n  strict: { address: 127.0.0.1, port: ${strict.port} }\n  owning: { address: 127.0.0.1, port: ${owning.port} }\n`);
  const at = (host: string, ...args: string[]) => distrun(['-i', inv, '--pki', pki.dir, '-H', host, 'copy', ...args]);
  const outside = await at('strict', src, elsewhere);
  t.is(outside.code, 1, outside.stderr);
  t.regex(outside.stderr, new RegExp(`strict: failed ${join(elsewhere, 'conf')}: ${join(elsewhere, 'conf')} is not a path this client may write`));
  const inside = await at('strict', src, allowed);
  t.is(inside.code, 0, inside.stderr);
  const owner = await at('strict', '--owner', 'nobody', src, allowed);
  t.is(owner.code, 255);
  t.regex(owner.stderr, /strict \([\d.:]+\): --owner is not allowed for this client/);
  const chosen = await at('owning', '--owner', 'nobody:nogroup', src, allowed);
  t.is(chosen.code, 0, chosen.stderr);
  t.is(chosen.stdout.toString(), `owning: changed ${join(allowed, 'conf')} (mode)\nowning: changed (1 changed)\n`);
  t.is(statSync(join(allowed, 'conf')).uid, 65534);
  const refused = await distrun(['-i', inv, '--pki', pki.dir, '-H', 'owning', 'copy', '--owner', 'no body', src, allowed]);
  t.is(refused.code, 255);
  t.regex(refused.stderr, /--owner takes USER or USER:GROUP, got 'no body'/);
});

test('rerun --failed of a copy with --owner writes with that owner again', async (t) => {
  const allowed = tempDir();
  const src = join(tempDir(), 'conf');
  writeFileSync(src, 'x=1\n');
  const owning = await startAgent(pki, 'agent3', {
    config: { policy: [{ clients: ['admin'], commands: ['true'], copy: [`${allowed}/*`], owner: true }] },
  });
  const inv = join(tempDir(), 'hosts.yaml');
  writeFileSync(inv, `hosts:\n  owning: { address: 127.0.0.1, port: ${owning.port} }\n`);
  const env = { XDG_CACHE_HOME: tempDir() }; // run records of its own
  const dest = join(allowed, 'later');
  const first = await distrun(['-i', inv, '--pki', pki.dir, '-H', 'owning', 'copy', '--owner', 'nobody:nogroup', src, `${dest}/`], { env });
  t.is(first.code, 1, first.stderr);
  mkdirSync(dest);
  const again = await distrun(['rerun', '--failed', '--pki', pki.dir], { env });
  t.is(again.code, 0, again.stderr);
  t.regex(again.stderr, /--owner nobody:nogroup/);
  t.is(statSync(join(dest, 'conf')).uid, 65534, 'the owner the first copy asked for');
});

test('--dry-run lists the entries and the hosts and sends nothing; a sparse file arrives with the same bytes (its holes filled)', async (t) => {
  const dir = tempDir();
  const sparse = join(dir, 'sparse.img');
  writeFileSync(sparse, 'head');
  truncateSync(sparse, 8 * 1024 * 1024);
  const dest = tempDir();
  const dry = await distrun(on('trio', 'copy', '-n', sparse, dest));
  t.is(dry.code, 0, dry.stderr);
  t.regex(dry.stdout.toString(), /^file sparse\.img \(8388608 bytes\)\nh1 .*\nh2 .*\nh3 .*\n$/);
  t.deepEqual(readdirSync(dest), []);
  const r = await distrun(on('one', 'copy', sparse, dest));
  t.is(r.code, 0, r.stderr);
  t.is(sha(readFileSync(join(dest, 'sparse.img'))), sha(readFileSync(sparse)));
});
