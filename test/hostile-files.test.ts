// Files: private keys stay private whatever was there before, and names never escape
// the PKI directory; --outdir never writes through a name someone else controls; run
// records someone else could have written are never run again.
import test from 'ava';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import {
  chmodSync,
  chownSync,
  existsSync,
  lchownSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { DISTRUN, cleanupAll, distrun, loopbackFleet, tempDir, waitFor, type Pki, type RunningAgent } from './helpers/fleet.js';
import { assertStillServing } from './helpers/serving.js';

let pki: Pki;
let agent: RunningAgent;
let inventory: string;

test.before(async () => {
  ({ pki, agent, inventory } = await loopbackFleet((port) => `hosts:\n  h[1-2]: {address: 127.0.0.1, port: ${port}}\n`));
});
test.after.always(cleanupAll);

const NOBODY = 65534;
const noStackTrace = /\n\s+at /;
const on = (hosts: string, ...rest: string[]) => ['-i', inventory, '--pki', pki.dir, '-H', hosts, ...rest];
/** A directory with exactly this mode (mkdir's is cut by the umask). */
function dirWithMode(path: string, mode: number): string {
  mkdirSync(path, { recursive: true });
  chmodSync(path, mode);
  return path;
}
/** A file an attacker would like overwritten: it must still say 'precious'. */
function preciousFile(dir: string): string {
  const file = join(dir, 'precious');
  writeFileSync(file, 'precious\n');
  return file;
}
/** A file owned by nobody, as another user on the machine would leave it. */
function nobodysFile(path: string, content: string): void {
  writeFileSync(path, content);
  chownSync(path, NOBODY, NOBODY);
}

const mode = (file: string) => statSync(file).mode & 0o777;

test('keys are 0600 in 0700 directories under umask 000, even over wider files and directories', async (t) => {
  const pki = join(tempDir(), 'pki');
  const out = join(tempDir(), 'bundle');
  // A stale bundle directory and key with wide permissions.
  mkdirSync(out, { mode: 0o777 });
  chmodSync(out, 0o777);
  writeFileSync(join(out, 'agent.key'), 'old', { mode: 0o666 });
  chmodSync(join(out, 'agent.key'), 0o666);
  const script = 'umask 000 && "$0" "$1" certs init --dir "$2" && "$0" "$1" certs agent web1 --out "$3" --force --dir "$2"';
  execFileSync('sh', ['-c', script, process.execPath, DISTRUN, pki, out]);
  t.is(mode(join(out, 'agent.key')), 0o600);
  t.is(mode(out), 0o700);
  t.is(mode(join(pki, 'ca.key')), 0o600);
  t.is(mode(pki), 0o700);
  t.false(
    readdirSync(out).some((f) => f.includes('.tmp')),
    'no temp file is left behind',
  );
});

test('a shared directory such as /tmp is refused for keys, not narrowed', async (t) => {
  const pki = join(tempDir(), 'pki');
  t.is((await distrun(['certs', 'init', '--dir', pki])).code, 0);
  const shared = join(tempDir(), 'shared');
  mkdirSync(shared);
  chmodSync(shared, 0o1777);
  const r = await distrun(['certs', 'agent', 'web1', '--out', shared, '--dir', pki]);
  t.is(r.code, 255);
  t.regex(r.stderr, /is a shared directory \(mode 1777\); private keys need a directory of their own/);
  t.is(statSync(shared).mode & 0o7777, 0o1777);
  t.false(existsSync(join(shared, 'agent.key')));
});

test('names that would escape the PKI directory are refused before anything is written', async (t) => {
  const pki = join(tempDir(), 'pki');
  t.is((await distrun(['certs', 'init', '--dir', pki])).code, 0);
  // (A NUL byte cannot reach a process argv; test/pki.test.ts checks it on the library.)
  for (const name of ['../../evil', 'a/b', '/etc/passwd', '..', '.hidden', '']) {
    const r = await distrun(['certs', 'agent', name, '--dir', pki]);
    t.is(r.code, 255, JSON.stringify(name));
    t.regex(r.stderr, /invalid agent name|invalid name/);
    t.notRegex(r.stderr, /\n\s+at /);
  }
  const client = await distrun(['certs', 'client', '../x', '--dir', pki]);
  t.is(client.code, 255);
  t.false(existsSync(join(pki, 'x')));
  t.false(existsSync(join(pki, '..', 'x')));
  const dns = await distrun(['certs', 'agent', 'ok', '--dns', 'a/../b', '--dir', pki]);
  t.is(dns.code, 255);
  t.regex(dns.stderr, /invalid DNS name/);
});

test('revoking an unknown name touches nothing and says so', async (t) => {
  const pki = join(tempDir(), 'pki');
  t.is((await distrun(['certs', 'init', '--dir', pki])).code, 0);
  const r = await distrun(['certs', 'revoke', '../ca', '--dir', pki]);
  t.is(r.code, 255);
  t.regex(r.stderr, /no issued certificate has the name or serial '..\/ca'/);
  t.false(existsSync(join(pki, 'crl.pem')));
});

// ---- --outdir ----------------------------------------------------------------

test('--outdir: a planted link in a world-writable directory is refused before anything runs; its target is untouched', async (t) => {
  const base = tempDir();
  const target = preciousFile(base);
  const open = dirWithMode(join(base, 'open'), 0o777);
  symlinkSync(target, join(open, 'h1.out'));
  const marker = join(base, 'ran');
  const r = await distrun(on('h1', '--outdir', open, 'touch', marker));
  t.is(r.code, 255);
  t.is(
    r.stderr,
    `distrun: --outdir ${open}: ${open} has mode 0777: others may write to it and it is not sticky, so they could replace what distrun writes\n`,
  );
  t.is(readFileSync(target, 'utf8'), 'precious\n');
  t.false(existsSync(marker), 'nothing ran');
  await assertStillServing(t, agent, pki.dir);
});

test('--outdir: in a sticky shared directory, names another user holds are refused (a file, a link), ours are replaced', async (t) => {
  const base = tempDir();
  const shared = dirWithMode(join(base, 'shared'), 0o1777);
  const target = preciousFile(base);
  nobodysFile(join(shared, 'h1.out'), 'theirs\n');
  const marker = join(base, 'ran');
  const r = await distrun(on('h1', '--outdir', shared, 'touch', marker));
  t.is(r.code, 255);
  t.is(r.stderr, `distrun: --outdir: ${shared}/h1.out is owned by uid ${NOBODY}, not by you; distrun neither writes through it nor replaces it\n`);
  t.notRegex(r.stderr, noStackTrace);
  t.is(readFileSync(join(shared, 'h1.out'), 'utf8'), 'theirs\n');
  t.false(existsSync(marker), 'nothing ran');

  symlinkSync(target, join(shared, 'h2.err'));
  lchownSync(join(shared, 'h2.err'), NOBODY, NOBODY);
  const link = await distrun(on('h2', '--outdir', shared, 'sh', '-c', 'echo new >&2'));
  t.is(link.code, 255);
  t.regex(link.stderr, /h2\.err is a symbolic link; distrun neither writes through it nor replaces it/);
  t.is(readFileSync(target, 'utf8'), 'precious\n');

  // Files of our own earlier run are replaced; the new ones are not wider than before.
  const own = dirWithMode(join(base, 'own'), 0o1777);
  writeFileSync(join(own, 'h1.out'), 'old output, longer than the new one\n');
  const again = await distrun(on('h1', '--outdir', own, 'echo', 'new'));
  t.is(again.code, 0, again.stderr);
  t.is(readFileSync(join(own, 'h1.out'), 'utf8'), 'new\n');
  t.is(readFileSync(join(own, 'h1.rc'), 'utf8'), '0\n');
  await assertStillServing(t, agent, pki.dir);
});

test('--outdir reused: the files distrun wrote for hosts not in the new run go; nothing it did not write is touched', async (t) => {
  const dir = join(tempDir(), 'out');
  const first = await distrun(on('h1,h2', '--outdir', dir, 'echo', 'first'));
  t.is(first.code, 0, first.stderr);
  t.deepEqual(readdirSync(dir).sort(), ['.distrun-outdir.json', 'h1.err', 'h1.out', 'h1.rc', 'h2.err', 'h2.out', 'h2.rc']);
  t.is(mode(join(dir, '.distrun-outdir.json')), 0o600);
  // The user's own files in the same directory, including one with an output-like name.
  writeFileSync(join(dir, 'notes.txt'), 'mine\n');
  writeFileSync(join(dir, 'h9.out'), 'not written by distrun\n');
  const second = await distrun(on('h1', '--outdir', dir, 'echo', 'second'));
  t.is(second.code, 0, second.stderr);
  t.is(second.stderr, '');
  t.deepEqual(readdirSync(dir).sort(), ['.distrun-outdir.json', 'h1.err', 'h1.out', 'h1.rc', 'h9.out', 'notes.txt']);
  t.is(readFileSync(join(dir, 'h1.out'), 'utf8'), 'second\n');
  t.is(readFileSync(join(dir, 'notes.txt'), 'utf8'), 'mine\n');
  t.deepEqual(JSON.parse(readFileSync(join(dir, '.distrun-outdir.json'), 'utf8')), { v: 1, files: ['h1.out', 'h1.err', 'h1.rc'] });
});

test("--outdir record: only plain output names it lists are removed, never through a link or another user's file", async (t) => {
  const base = tempDir();
  const target = preciousFile(base);
  const shared = dirWithMode(join(base, 'shared'), 0o1777);
  const record = join(shared, '.distrun-outdir.json');
  const first = await distrun(on('h1', '--outdir', shared, 'true'));
  t.is(first.code, 0, first.stderr);
  // A record of ours that names what distrun would never write, a link, and someone else's file.
  symlinkSync(target, join(shared, 'h2.out'));
  lchownSync(join(shared, 'h2.out'), NOBODY, NOBODY);
  nobodysFile(join(shared, 'h2.err'), 'theirs\n');
  writeFileSync(record, JSON.stringify({ v: 1, files: ['../precious', target, '.hidden.out', 'h2.out', 'h2.err', 'h1.out'] }), { mode: 0o600 });
  const r = await distrun(on('h1', '--outdir', shared, 'true'));
  t.is(r.code, 0, r.stderr);
  t.is(
    r.stderr,
    [
      `distrun: --outdir: ${shared}/h2.out is a symbolic link; left alone`,
      `distrun: --outdir: ${shared}/h2.err is owned by uid ${NOBODY}, not by you; left alone`,
      '',
    ].join('\n'),
  );
  t.is(readFileSync(target, 'utf8'), 'precious\n');
  t.is(readFileSync(join(shared, 'h2.err'), 'utf8'), 'theirs\n');

  // A record distrun did not write itself is not trusted, and nothing runs.
  rmSync(record);
  nobodysFile(record, JSON.stringify({ v: 1, files: ['h1.out'] }));
  const marker = join(base, 'ran');
  const refused = await distrun(on('h1', '--outdir', shared, 'touch', marker));
  t.is(refused.code, 255);
  t.regex(
    refused.stderr,
    /^distrun: --outdir: .*\.distrun-outdir\.json is owned by uid 65534, not by you .*; distrun does not trust it \(remove it to go on\)\n$/,
  );
  t.false(existsSync(marker), 'nothing ran');
});

test('--outdir: a way to it that others could change is refused: an open ancestor, a directory or a link of another user', async (t) => {
  const base = tempDir();
  const cases: Array<[string, string, RegExp]> = [];
  const openParent = dirWithMode(join(base, 'open'), 0o777);
  cases.push([join(openParent, 'out'), openParent, /has mode 0777: others may write to it/]);
  const theirs = dirWithMode(join(base, 'theirs'), 0o755);
  chownSync(theirs, NOBODY, NOBODY);
  cases.push([join(theirs, 'out'), theirs, new RegExp(`is owned by uid ${NOBODY}, who could redirect what distrun writes`)]);
  const link = join(dirWithMode(join(base, 'sticky'), 0o1777), 'out');
  symlinkSync(dirWithMode(join(base, 'elsewhere'), 0o755), link);
  lchownSync(link, NOBODY, NOBODY);
  cases.push([link, link, new RegExp(`is owned by uid ${NOBODY}, who could redirect what distrun writes`)]);
  for (const [outdir, culprit, problem] of cases) {
    const r = await distrun(on('h1', '--outdir', outdir, 'true'));
    t.is(r.code, 255, outdir);
    t.true(r.stderr.startsWith(`distrun: --outdir ${outdir}: ${culprit} `), r.stderr);
    t.regex(r.stderr, problem);
    t.notRegex(r.stderr, noStackTrace);
  }
  t.deepEqual(readdirSync(join(base, 'elsewhere')), [], 'nothing was written through the link');
  // Our own link, to our own directory, is followed; a missing directory is made (0755).
  const mine = join(base, 'mine');
  symlinkSync(join(base, 'made', 'here'), mine);
  const ok = await distrun(on('h1', '--outdir', mine, 'echo', 'x'));
  t.is(ok.code, 0, ok.stderr);
  t.is(readFileSync(join(base, 'made', 'here', 'h1.out'), 'utf8'), 'x\n');
  t.is(statSync(join(base, 'made', 'here')).mode & 0o777, 0o755);
  // One address with two ports: two hosts, named with their ports, two sets of files.
  const same = await distrun(['--pki', pki.dir, '-H', `127.0.0.1:${agent.port},127.0.0.1:1`, '--outdir', join(base, 'dup'), 'echo', 'x']);
  t.is(same.code, 255);
  t.is(readFileSync(join(base, 'dup', `127.0.0.1:${agent.port}.out`), 'utf8'), 'x\n');
  t.regex(same.stderr, /^distrun: 127\.0\.0\.1:1: connection refused/m);
  t.false(existsSync(join(base, 'dup', '127.0.0.1.out')));
  await assertStillServing(t, agent, pki.dir);
});

test('--outdir: a name planted during the run is not written through; the other files are complete; a clean error, exit 255', async (t) => {
  const base = tempDir();
  const outdir = dirWithMode(join(base, 'out'), 0o1777);
  const target = preciousFile(base);
  const go = join(base, 'go');
  // One host at a time: h2 starts after h1, which waits until the link is planted.
  const running = distrun(on('h1,h2', '-f', '1', '--outdir', outdir, 'sh', '-c', `while [ ! -e ${go} ]; do sleep 0.05; done; echo done`));
  t.true(await waitFor(() => existsSync(join(outdir, 'h1.out'))), 'h1 started');
  symlinkSync(target, join(outdir, 'h2.out'));
  lchownSync(join(outdir, 'h2.out'), NOBODY, NOBODY);
  writeFileSync(go, '');
  const r = await running;
  t.is(r.code, 255);
  t.true(
    r.stderr.includes(`distrun: --outdir: cannot write ${outdir}/h2.out: something was put under this name during the run; it is left alone\n`),
    r.stderr,
  );
  t.regex(r.stderr, /--outdir .* is incomplete: 1 file could not be written/);
  t.notRegex(r.stderr, noStackTrace);
  t.is(r.stdout.toString(), 'h1: done\nh2: done\n', "both hosts' output is still shown");
  t.is(readFileSync(target, 'utf8'), 'precious\n');
  t.is(readFileSync(join(outdir, 'h1.out'), 'utf8'), 'done\n');
  t.deepEqual(
    ['h1.rc', 'h2.rc', 'h2.err'].map((f) => readFileSync(join(outdir, f), 'utf8')),
    ['0\n', '0\n', ''],
  );
  await assertStillServing(t, agent, pki.dir);
});

test('--outdir: a full disk mid-run is a clean error with exit 255; the files written before are complete', async (t) => {
  // A 64 KiB tmpfs in a mount namespace of its own: gone when the namespace is.
  const base = tempDir();
  const outdir = dirWithMode(join(base, 'out'), 0o755);
  const copy = join(base, 'copy');
  const script =
    'mount -t tmpfs -o size=64k tmpfs "$1" || exit 99; shift; dir="$1" copy="$2"; shift 2; "$@" > "$copy.stdout" 2> "$copy.stderr"; echo $? > "$copy.code"; mkdir "$copy"; cp -a "$dir/." "$copy/"';
  // h2 first (one line), then h1 (1 MiB, which fills the disk).
  const slot = join(base, 'first');
  const args = on(
    'h2,h1',
    '-f',
    '1',
    '--outdir',
    outdir,
    'sh',
    '-c',
    `if mkdir ${slot} 2>/dev/null; then echo small; else head -c 1048576 /dev/zero | tr '\\0' x; echo; fi`,
  );
  const child = spawn(
    'unshare',
    ['-m', '--propagation', 'private', 'sh', '-c', script, 'sh', outdir, outdir, copy, process.execPath, DISTRUN, ...args],
    {
      env: { ...process.env, XDG_CACHE_HOME: tempDir() },
      stdio: 'inherit',
    },
  );
  const [status] = (await once(child, 'close')) as [number | null];
  t.is(status, 0);
  const stderr = readFileSync(`${copy}.stderr`, 'utf8');
  t.is(readFileSync(`${copy}.code`, 'utf8'), '255\n', stderr);
  t.regex(stderr, new RegExp(`distrun: --outdir: cannot write ${outdir}/h1\\.out: no space left on device\n`));
  t.notRegex(stderr, noStackTrace);
  const screen = readFileSync(`${copy}.stdout`, 'utf8').split('\n');
  t.true(screen.includes('h2: small') && screen.some((l) => l.length === 'h1: '.length + 1048576), "both hosts' output is on the screen");
  t.is(readFileSync(join(copy, 'h2.out'), 'utf8'), 'small\n');
  t.is(readFileSync(join(copy, 'h2.rc'), 'utf8'), '0\n');
  await assertStillServing(t, agent, pki.dir);
});

// ---- run records -----------------------------------------------------------------

/** A run record as `distrun rerun` would take it: `touch marker` on the agent's host. */
function plantedRecord(id: string, marker: string): string {
  return JSON.stringify({
    id,
    startedAt: '2099-01-01T00:00:00.000Z',
    endedAt: '2099-01-01T00:00:01.000Z',
    command: ['touch', marker],
    shell: false,
    stdin: false,
    stderr: true,
    exitCode: 1,
    hosts: [
      {
        name: 'h1',
        address: '127.0.0.1',
        port: agent.port,
        status: 'failed',
        exitCode: 1,
        reason: null,
        durationMs: 1,
        bytesOut: 0,
        bytesErr: 0,
        stdoutSha256: null,
        stderrSha256: null,
      },
    ],
  });
}

test('a run record planted under a shared XDG_CACHE_HOME is never run again, and distrun says why', async (t) => {
  const ran = (marker: string) => existsSync(marker) || agent.logs.some((l) => JSON.stringify(l).includes(marker));
  const id = '20990101T000000000Z-beef';
  const rerun = (cache: string) => distrun(['rerun', '--failed', '--pki', pki.dir], { env: { XDG_CACHE_HOME: cache } });

  // The attacker made distrun/runs in a shared cache before us.
  const shared = dirWithMode(join(tempDir(), 'cache'), 0o1777);
  const theirRuns = dirWithMode(join(shared, 'distrun', 'runs'), 0o777);
  chownSync(join(shared, 'distrun'), NOBODY, NOBODY);
  chownSync(theirRuns, NOBODY, NOBODY);
  const marker1 = join(tempDir(), 'pwned');
  nobodysFile(join(theirRuns, `${id}.json`), plantedRecord(id, marker1));
  const refused = await rerun(shared);
  t.is(refused.code, 255);
  t.is(
    refused.stderr,
    `distrun: not using the run records in ${theirRuns}: it is owned by uid ${NOBODY}, not by you (uid 0), so they may not be yours\n`,
  );
  const listed = await distrun(['runs'], { env: { XDG_CACHE_HOME: shared } });
  t.is(listed.code, 255);
  // A run there still works; its record is not left in their directory.
  const run = await distrun(on('h1', 'true'), { env: { XDG_CACHE_HOME: shared } });
  t.is(run.code, 0);
  t.regex(run.stderr, /warning: could not save the run record .* is owned by uid 65534, not by you/);
  t.deepEqual(readdirSync(theirRuns), [`${id}.json`]);
  t.false(ran(marker1));

  // Our own runs directory, with records planted in it (while it was open, or by root):
  // someone else's, one others may write, a link. The newest is planted: rerun refuses
  // it rather than fall back on an older one.
  const cache = tempDir();
  const own = await distrun(on('h1', 'false'), { env: { XDG_CACHE_HOME: cache } });
  t.is(own.code, 1);
  const runs = join(cache, 'distrun', 'runs');
  const [ours] = readdirSync(runs);
  const plants: Array<[string, (file: string) => void, RegExp]> = [
    ['nobody', (file) => chownSync(file, NOBODY, NOBODY), new RegExp(`is owned by uid ${NOBODY}, not by you`)],
    ['writable', (file) => chmodSync(file, 0o666), /has mode 0666: others may read or write it/],
  ];
  for (const [name, spoil, problem] of plants) {
    const marker = join(tempDir(), `pwned-${name}`);
    const file = join(runs, `${id}.json`);
    writeFileSync(file, plantedRecord(id, marker), { mode: 0o600 });
    spoil(file);
    const r = await rerun(cache);
    t.is(r.code, 255, name);
    t.true(r.stderr.startsWith(`distrun: run record ${id} cannot be trusted: ${file} `), r.stderr);
    t.regex(r.stderr, problem);
    const list = await distrun(['runs'], { env: { XDG_CACHE_HOME: cache } });
    t.is(list.code, 0);
    t.regex(list.stderr, new RegExp(`^distrun: skipping: run record ${id} cannot be trusted: .*${problem.source}`));
    t.regex(list.stdout.toString(), new RegExp(`^${ours!.slice(0, -5)} .* false$`, 'm'), 'our own record is still listed');
    t.false(ran(marker), name);
    rmSync(file, { force: true });
  }
  const marker = join(tempDir(), 'pwned-link');
  const elsewhere = join(tempDir(), 'record.json');
  writeFileSync(elsewhere, plantedRecord(id, marker), { mode: 0o600 });
  symlinkSync(elsewhere, join(runs, `${id}.json`));
  const linked = await rerun(cache);
  t.is(linked.code, 255);
  t.regex(linked.stderr, new RegExp(`run record ${id} cannot be trusted: .*${id}\\.json is a symbolic link`));
  t.false(ran(marker));
  await assertStillServing(t, agent, pki.dir);
});
