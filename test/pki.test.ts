import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PkiError, UsageError } from '../src/errors.js';
import { loadClientIdentity } from '../src/pki/pki-paths.js';
import { initPki, issueAgentBundle, issueClientBundle, readIssued, renew } from '../src/pki/pki-store.js';
import { DISTRUN } from './helpers/fleet.js';

const root = mkdtempSync(join(tmpdir(), 'distrun-pki-unit-'));
const pki = join(root, 'nested', 'pki');
test.after.always(() => rmSync(root, { recursive: true, force: true }));

const mode = (file: string) => statSync(file).mode & 0o777;
const openssl = (...args: string[]) => execFileSync('openssl', args, { encoding: 'utf8' });

test.serial('init writes keys 0600 in 0700 directories whatever the umask', (t) => {
  // Through the real binary, in a shell with a permissive umask (workers cannot set one).
  const script = 'umask 000 && "$0" "$1" certs init --dir "$2" && "$0" "$1" certs agent web1 --ip 127.0.0.1 --ip ::1 --dns web1.example.com --dir "$2"';
  execFileSync('sh', ['-c', script, process.execPath, DISTRUN, pki]);
  for (const dir of [join(root, 'nested'), pki, join(pki, 'agents'), join(pki, 'agents', 'web1')]) t.is(mode(dir), 0o700, dir);
  for (const key of ['ca.key', 'client.key', 'agents/web1/agent.key']) t.is(mode(join(pki, key)), 0o600, key);
  t.is(mode(join(pki, 'ca.crt')), 0o644);
});

test.serial('init refuses to replace a CA without --force', (t) => {
  t.throws(() => initPki(pki), { instanceOf: PkiError, message: /a CA already exists in .* \(use --force/ });
});

test.serial('openssl verifies every certificate; roles and names are right', (t) => {
  const agent = join(pki, 'agents', 'web1', 'agent.crt');
  t.regex(openssl('verify', '-CAfile', join(pki, 'ca.crt'), agent, join(pki, 'client.crt')), /agent\.crt: OK\n.*client\.crt: OK/);
  const agentText = openssl('x509', '-in', agent, '-noout', '-ext', 'subjectAltName,extendedKeyUsage,basicConstraints');
  t.regex(agentText, /DNS:web1, DNS:web1\.example\.com, IP Address:127\.0\.0\.1, IP Address:0:0:0:0:0:0:0:1/);
  t.regex(agentText, /TLS Web Server Authentication/);
  t.notRegex(agentText, /Client Authentication/);
  t.regex(agentText, /CA:FALSE/);
  const clientText = openssl('x509', '-in', join(pki, 'client.crt'), '-noout', '-ext', 'extendedKeyUsage', '-subject');
  t.regex(clientText, /TLS Web Client Authentication/);
  t.notRegex(clientText, /Server Authentication/);
  t.regex(clientText, /CN ?= ?admin/);
  t.regex(openssl('x509', '-in', join(pki, 'ca.crt'), '-noout', '-ext', 'basicConstraints,keyUsage'), /CA:TRUE[\s\S]*Certificate Sign, CRL Sign/);
});

test.serial('client bundles, overwrite protection and the issued record', (t) => {
  const bundle = issueClientBundle(pki, 'ops-bot');
  t.is(bundle.dir, join(pki, 'clients', 'ops-bot'));
  t.is(mode(join(bundle.dir, 'client.key')), 0o600);
  t.notThrows(() => loadClientIdentity(bundle.dir));
  t.throws(() => issueClientBundle(pki, 'ops-bot'), { instanceOf: PkiError, message: /already exists \(use --force/ });
  t.notThrows(() => issueClientBundle(pki, 'ops-bot', { force: true }));
  const issued = readIssued(pki);
  t.deepEqual(issued.map((r) => `${r.role}:${r.name}`), ['ca:ca', 'client:admin', 'agent:web1', 'client:ops-bot', 'client:ops-bot']);
  t.true(issued.every((r) => r.role === 'ca' || /^[0-9a-f]{32}$/.test(r.serial)));
});

test.serial('renew re-issues with the same names and a new key and serial', (t) => {
  const before = readIssued(pki).filter((r) => r.name === 'web1');
  const bundle = renew(pki, 'web1');
  t.is(bundle.dir, join(pki, 'agents', 'web1'));
  t.not(bundle.serial, before.at(-1)!.serial);
  t.deepEqual(bundle.altNames, ['DNS:web1', 'DNS:web1.example.com', 'IP:127.0.0.1', 'IP:::1']);
  t.throws(() => renew(pki, 'nobody-by-this-name'), { instanceOf: PkiError, message: /no valid certificate named/ });
});

test('names that could escape the PKI directory are refused', (t) => {
  for (const name of ['../evil', 'a/b', '', '.hidden', 'a..b', 'x y', 'a\0b', 'ok\0/../x']) {
    t.throws(() => issueAgentBundle(pki, name), { instanceOf: UsageError }, name);
  }
  t.throws(() => issueAgentBundle(pki, 'ok', { ips: ['300.1.1.1'] }), { instanceOf: UsageError, message: /invalid IP address/ });
});

test('missing CA or client identity is a clear error', (t) => {
  const empty = mkdtempSync(join(root, 'empty-'));
  t.throws(() => loadClientIdentity(empty), { instanceOf: PkiError, message: /ca\.crt missing.*distrun certs init --dir/ });
  t.throws(() => issueAgentBundle(empty, 'web1'), { instanceOf: PkiError, message: /no CA in .*certs init/ });
});
