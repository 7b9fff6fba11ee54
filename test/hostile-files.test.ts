// Files: private keys stay private whatever was there before, and names never escape
// the PKI directory.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DISTRUN, cleanupAll, distrun, tempDir } from './helpers/fleet.js';

test.after.always(cleanupAll);

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
  t.false(readdirSync(out).some((f) => f.includes('.tmp')), 'no temp file is left behind');
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
