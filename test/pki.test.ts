import test, { type ExecutionContext } from 'ava';
import { execFileSync, spawnSync } from 'node:child_process';
import { createPrivateKey, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import forge from 'node-forge';
import { PkiError, UsageError } from '../src/errors.js';
import { createCa, createCrl, issueCertificate, randomSerial } from '../src/pki/certificates.js';
import { otherRoleProblem } from '../src/pki/certificate-role.js';
import { loadClientIdentity } from '../src/pki/pki-paths.js';
import { initPki, issueAgentBundle, issueBrokerBundle, issueClientBundle, readIssued, renew, revoke } from '../src/pki/pki-store.js';
import { DISTRUN } from './helpers/fleet.js';

const root = mkdtempSync(join(tmpdir(), 'distrun-pki-unit-'));
const pki = join(root, 'nested', 'pki');
test.after.always(() => rmSync(root, { recursive: true, force: true }));

const mode = (file: string) => statSync(file).mode & 0o777;
const openssl = (...args: string[]) => execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/** The subject and authority key identifiers of a certificate, as openssl reads them. */
function keyIds(cert: string): { ski?: string; aki?: string } {
  const text = openssl('x509', '-in', cert, '-noout', '-ext', 'subjectKeyIdentifier,authorityKeyIdentifier');
  return {
    ski: /Subject Key Identifier: *\n\s*([0-9A-F:]+)/.exec(text)?.[1],
    aki: /Authority Key Identifier: *\n\s*(?:keyid:)?([0-9A-F:]+)/.exec(text)?.[1],
  };
}

/** OpenSSL checks the CRL's signature, and refuses `revokedCert` but not `validCert` with it. */
function checkCrl(t: ExecutionContext, dir: string, revokedCert: string, validCert: string): void {
  const [ca, crl] = [join(dir, 'ca.crt'), join(dir, 'crl.pem')];
  const signature = spawnSync('openssl', ['crl', '-in', crl, '-CAfile', ca, '-noout'], { encoding: 'utf8' });
  t.is(signature.status, 0, signature.stderr);
  t.regex(signature.stderr, /verify OK/);
  const refused = spawnSync('openssl', ['verify', '-crl_check', '-CAfile', ca, '-CRLfile', crl, revokedCert], { encoding: 'utf8' });
  t.not(refused.status, 0);
  t.regex(refused.stdout + refused.stderr, /certificate revoked/);
  t.regex(openssl('verify', '-crl_check', '-CAfile', ca, '-CRLfile', crl, validCert), /: OK/);
}

test.serial('init writes keys 0600 in 0700 directories whatever the umask', (t) => {
  // Through the real binary, in a shell with a permissive umask (workers cannot set one).
  const script =
    'umask 000 && "$0" "$1" certs init --dir "$2" && "$0" "$1" certs agent web1 --ip 127.0.0.1 --ip ::1 --dns web1.example.com --dir "$2"';
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
  // Client use too, to log in to a broker; the OU names the role (certificate-role.ts).
  t.regex(agentText, /TLS Web Server Authentication, TLS Web Client Authentication/);
  t.regex(openssl('x509', '-in', agent, '-noout', '-subject'), /OU ?= ?agent/);
  t.regex(agentText, /CA:FALSE/);
  const clientText = openssl('x509', '-in', join(pki, 'client.crt'), '-noout', '-ext', 'extendedKeyUsage', '-subject');
  t.regex(clientText, /TLS Web Client Authentication/);
  t.notRegex(clientText, /Server Authentication/);
  t.regex(clientText, /CN ?= ?admin/);
  t.regex(openssl('x509', '-in', join(pki, 'ca.crt'), '-noout', '-ext', 'basicConstraints,keyUsage'), /CA:TRUE[\s\S]*Certificate Sign, CRL Sign/);
});

test.serial('keys are ECDSA P-256 in PKCS#8; certificates are signed with ecdsa-with-SHA256 and chain by key identifier', (t) => {
  for (const key of ['ca.key', 'client.key', 'agents/web1/agent.key']) {
    const pem = readFileSync(join(pki, key), 'utf8');
    const parsed = createPrivateKey(pem);
    // PKCS#8 PEM: the file is exactly what exporting the key as PKCS#8 gives.
    t.is(parsed.export({ type: 'pkcs8', format: 'pem' }), pem, key);
    t.is(parsed.asymmetricKeyType, 'ec', key);
    t.is(parsed.asymmetricKeyDetails?.namedCurve, 'prime256v1', key);
  }
  const agent = join(pki, 'agents', 'web1', 'agent.crt');
  const text = openssl('x509', '-in', agent, '-noout', '-text');
  t.regex(text, /Signature Algorithm: ecdsa-with-SHA256/);
  t.regex(text, /Public Key Algorithm: id-ecPublicKey[\s\S]*NIST CURVE: P-256/);
  t.regex(text, /Key Usage: critical\n\s*Digital Signature\n/, 'no keyEncipherment for an EC key');
  const ca = keyIds(join(pki, 'ca.crt'));
  t.regex(ca.ski ?? '', /^([0-9A-F]{2}:){19}[0-9A-F]{2}$/);
  t.is(ca.aki, undefined, 'a self-signed CA names no other key');
  for (const leaf of [agent, join(pki, 'client.crt')]) {
    const ids = keyIds(leaf);
    t.is(ids.aki, ca.ski, leaf);
    t.truthy(ids.ski);
    t.not(ids.ski, ca.ski);
  }
});

interface HandshakeResult {
  server: { authorized: boolean; error?: string; peerCn?: string; authorizationError?: string };
  client: { authorized: boolean; error?: string; code?: string; peerCn?: string };
}

/**
 * A TLS 1.3 handshake over loopback between a server that requires and verifies a
 * client certificate and a client that verifies the server's; reports what each side saw.
 */
async function handshake(
  serverId: { cert: Buffer; key: Buffer },
  clientId: { cert: Buffer; key: Buffer },
  ca: Buffer,
  { servername, serverRejects = true }: { servername?: string; serverRejects?: boolean } = {},
): Promise<HandshakeResult> {
  let serverSide: HandshakeResult['server'] | undefined;
  let serverDone!: () => void;
  const serverSeen = new Promise<void>((resolve) => {
    serverDone = resolve;
  });
  const server = tls.createServer(
    {
      ...serverId,
      ca,
      requestCert: true,
      rejectUnauthorized: serverRejects,
      minVersion: 'TLSv1.3',
    },
    (socket) => {
      serverSide = { authorized: socket.authorized, peerCn: String(socket.getPeerCertificate().subject?.CN) };
      if (socket.authorizationError) serverSide.authorizationError = String(socket.authorizationError);
      socket.end('hello');
      serverDone();
    },
  );
  // A server that rejects a client certificate just drops the connection ("socket hang up").
  server.on('tlsClientError', (err) => {
    serverSide = { authorized: false, error: err.message };
    serverDone();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  try {
    const clientSide = await new Promise<HandshakeResult['client']>((resolve) => {
      const socket = tls.connect({
        host: '127.0.0.1',
        port,
        servername,
        ...clientId,
        ca,
        minVersion: 'TLSv1.3',
        rejectUnauthorized: true,
      });
      let result: HandshakeResult['client'] | undefined;
      socket.on('secureConnect', () => {
        result = { authorized: socket.authorized, peerCn: String(socket.getPeerCertificate().subject?.CN) };
      });
      socket.on('data', () => socket.end());
      socket.on('error', (err: NodeJS.ErrnoException) => {
        result = { authorized: false, error: err.message, code: err.code };
        socket.destroy();
      });
      socket.on('close', () => resolve(result ?? { authorized: false, error: 'closed before the handshake' }));
    });
    // A client that rejected the server never sends its certificate: the server then
    // sees only a failed handshake (or nothing at all), so do not wait for it forever.
    await Promise.race([serverSeen, new Promise((resolve) => setTimeout(resolve, 2000))]);
    return { server: serverSide ?? { authorized: false, error: 'no handshake' }, client: clientSide };
  } finally {
    server.close();
  }
}

const pkiFile = (...parts: string[]) => readFileSync(join(pki, ...parts));

test.serial('mutual TLS 1.3 between the agent bundle and the admin identity succeeds', async (t) => {
  const admin = loadClientIdentity(pki);
  const agent = { cert: pkiFile('agents', 'web1', 'agent.crt'), key: pkiFile('agents', 'web1', 'agent.key') };
  t.deepEqual(pkiFile('agents', 'web1', 'ca.crt'), admin.ca, 'the bundle carries the CA certificate');
  const result = await handshake(agent, admin, admin.ca);
  t.deepEqual(result.client, { authorized: true, peerCn: 'web1' });
  t.deepEqual(result.server, { authorized: true, peerCn: 'admin' });
});

test.serial("a client certificate is refused as a server certificate; an agent's passes OpenSSL as a client, and its role refuses it", async (t) => {
  const admin = loadClientIdentity(pki);
  const agent = { cert: pkiFile('agents', 'web1', 'agent.crt'), key: pkiFile('agents', 'web1', 'agent.key') };
  // servername 'admin' matches the client certificate's SAN, so only its purpose is wrong.
  const asServer = await handshake(admin, admin, admin.ca, { servername: 'admin' });
  t.false(asServer.client.authorized);
  t.regex(`${asServer.client.code} ${asServer.client.error}`, /purpose/i);
  // An agent logs in to a broker with its certificate: OpenSSL takes it for client use.
  const asClient = await handshake(agent, agent, admin.ca);
  t.true(asClient.server.authorized);
  // What refuses it on an agent (test/hostile-identity.test.ts) is its role.
  const der = (pem: Buffer) => new X509Certificate(pem).raw;
  t.is(otherRoleProblem(der(agent.cert), 'client'), "is an agent's certificate, not a client's");
  t.is(otherRoleProblem(der(admin.cert), 'agent'), "is a client's certificate, not an agent's");
  t.is(otherRoleProblem(der(agent.cert), 'agent'), undefined);
  t.is(otherRoleProblem(der(admin.cert), 'client'), undefined);
});

test.serial('client bundles, overwrite protection and the issued record', (t) => {
  const bundle = issueClientBundle(pki, 'ops-bot');
  t.is(bundle.dir, join(pki, 'clients', 'ops-bot'));
  t.is(mode(join(bundle.dir, 'client.key')), 0o600);
  t.notThrows(() => loadClientIdentity(bundle.dir));
  t.throws(() => issueClientBundle(pki, 'ops-bot'), { instanceOf: PkiError, message: /already exists \(use --force/ });
  t.notThrows(() => issueClientBundle(pki, 'ops-bot', { force: true }));
  const issued = readIssued(pki);
  t.deepEqual(
    issued.map((r) => `${r.role}:${r.name}`),
    ['ca:ca', 'client:admin', 'agent:web1', 'client:ops-bot', 'client:ops-bot'],
  );
  t.true(issued.every((r) => r.role === 'ca' || /^[4-7][0-9a-f]{31}$/.test(r.serial)));
  // The recorded serial is the certificate's, as openssl prints it.
  const printed = openssl('x509', '-in', join(bundle.dir, 'client.crt'), '-noout', '-serial').trim();
  t.is(printed.toLowerCase(), `serial=${issued.at(-1)!.serial}`);
});

test.serial('broker bundles: server and route (client) use, the broker role, 0600 key, in the issued record', (t) => {
  const bundle = issueBrokerBundle(pki, 'nats1', { ips: ['127.0.0.1'] });
  t.is(bundle.dir, join(pki, 'brokers', 'nats1'));
  t.is(mode(join(bundle.dir, 'broker.key')), 0o600);
  const crt = join(bundle.dir, 'broker.crt');
  t.regex(openssl('verify', '-CAfile', join(pki, 'ca.crt'), crt), /: OK/);
  const text = openssl('x509', '-in', crt, '-noout', '-subject', '-ext', 'subjectAltName,extendedKeyUsage');
  t.regex(text, /OU ?= ?broker/);
  t.regex(text, /TLS Web Server Authentication, TLS Web Client Authentication/);
  t.regex(text, /DNS:nats1, IP Address:127\.0\.0\.1/);
  t.is(otherRoleProblem(new X509Certificate(readFileSync(crt)).raw, 'client'), "is a broker's certificate, not a client's");
  t.is(otherRoleProblem(new X509Certificate(readFileSync(crt)).raw, 'agent'), "is a broker's certificate, not an agent's");
  t.like(readIssued(pki).at(-1), { role: 'broker', name: 'nats1', ips: ['127.0.0.1'], dns: ['nats1'] });
  t.throws(() => issueBrokerBundle(pki, 'nats1'), { instanceOf: PkiError, message: /already exists \(use --force/ });
});

test.serial('renew re-issues with the same names and a new key and serial', (t) => {
  const before = readIssued(pki).filter((r) => r.name === 'web1');
  const bundle = renew(pki, 'web1');
  t.is(bundle.dir, join(pki, 'agents', 'web1'));
  t.not(bundle.serial, before.at(-1)!.serial);
  t.deepEqual(bundle.altNames, ['DNS:web1', 'DNS:web1.example.com', 'IP:127.0.0.1', 'IP:::1']);
  t.throws(() => renew(pki, 'nobody-by-this-name'), { instanceOf: PkiError, message: /no valid certificate named/ });
});

test.serial('revoke publishes a CRL that OpenSSL verifies and enforces', (t) => {
  const { revoked, crl } = revoke(pki, 'ops-bot');
  t.is(revoked.length, 2, 'both certificates named ops-bot');
  t.is(crl, join(pki, 'crl.pem'));
  t.regex(openssl('crl', '-in', crl, '-noout', '-text'), /Signature Algorithm: ecdsa-with-SHA256/);
  checkCrl(t, pki, join(pki, 'clients', 'ops-bot', 'client.crt'), join(pki, 'agents', 'web1', 'agent.crt'));
});

// Last of the serial tests: it replaces the CA that the ones above rely on.
test.serial('init --force replaces the CA; what the old one issued no longer verifies', (t) => {
  const oldCa = readFileSync(join(pki, 'ca.crt'), 'utf8');
  const result = initPki(pki, { force: true });
  t.is(result.caCert, join(pki, 'ca.crt'));
  t.is(result.clientCert, join(pki, 'client.crt'));
  t.not(readFileSync(result.caCert, 'utf8'), oldCa);
  t.is(mode(join(pki, 'ca.key')), 0o600);
  t.regex(openssl('verify', '-CAfile', result.caCert, result.clientCert), /client\.crt: OK/);
  t.throws(() => openssl('verify', '-CAfile', result.caCert, join(pki, 'agents', 'web1', 'agent.crt')), undefined, 'old agent certificate');
});

test('names that could escape the PKI directory are refused', (t) => {
  for (const name of ['../evil', 'a/b', '', '.hidden', 'a..b', 'x y', 'a\0b', 'ok\0/../x']) {
    t.throws(() => issueAgentBundle(pki, name), { instanceOf: UsageError }, name);
  }
  t.throws(() => issueAgentBundle(pki, 'ok', { ips: ['300.1.1.1'] }), { instanceOf: UsageError, message: /invalid IP address/ });
  for (const days of [0, -1, 1.5, Number.NaN, 100000]) {
    t.throws(() => issueAgentBundle(pki, 'ok', { days }), { instanceOf: UsageError, message: /invalid validity/ }, String(days));
  }
});

test('missing CA or client identity is a clear error', (t) => {
  const empty = mkdtempSync(join(root, 'empty-'));
  t.throws(() => loadClientIdentity(empty), { instanceOf: PkiError, message: /ca\.crt missing.*distrun certs init --dir/ });
  t.throws(() => issueAgentBundle(empty, 'web1'), { instanceOf: PkiError, message: /no CA in .*certs init/ });
});

/** A CA as DistRunner made it before the move to ECDSA: an RSA 3072 key, signed by node-forge. */
function writeRsaCa(dir: string): void {
  const { privateKey } = generateKeyPairSync('rsa', {
    modulusLength: 3072,
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  const key = forge.pki.privateKeyFromPem(privateKey) as forge.pki.rsa.PrivateKey;
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.setRsaPublicKey(key.n, key.e);
  cert.serialNumber = randomSerial();
  cert.validity.notBefore = new Date(Date.now() - 3600_000);
  cert.validity.notAfter = new Date(Date.now() + 3650 * 86400_000);
  const subject = [
    { name: 'commonName', value: 'DistRunner CA legacy' },
    { name: 'organizationName', value: 'DistRunner' },
  ];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(key, forge.md.sha256.create());
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(join(dir, 'ca.crt'), forge.pki.certificateToPem(cert));
  writeFileSync(join(dir, 'ca.key'), privateKey, { mode: 0o600 });
}

test('an RSA CA made before the move to ECDSA issues, renews and revokes EC certificates', async (t) => {
  const legacy = join(root, 'legacy-rsa');
  writeRsaCa(legacy);
  const ca = join(legacy, 'ca.crt');
  const agent = issueAgentBundle(legacy, 'old-web', { ips: ['127.0.0.1'] });
  const client = issueClientBundle(legacy, 'old-admin');
  const agentCert = join(agent.dir, 'agent.crt');
  const clientCert = join(client.dir, 'client.crt');
  t.regex(openssl('verify', '-CAfile', ca, agentCert, clientCert), /agent\.crt: OK\n.*client\.crt: OK/);
  const text = openssl('x509', '-in', agentCert, '-noout', '-text');
  t.regex(text, /Signature Algorithm: sha256WithRSAEncryption/);
  t.regex(text, /Public Key Algorithm: id-ecPublicKey/);
  t.is(createPrivateKey(readFileSync(join(agent.dir, 'agent.key'))).asymmetricKeyType, 'ec');
  // forge computed the CA's identifier; ours must come out the same for the chain to link.
  t.is(keyIds(agentCert).aki, keyIds(ca).ski);

  const read = (dir: string, name: string) => ({ cert: readFileSync(join(dir, `${name}.crt`)), key: readFileSync(join(dir, `${name}.key`)) });
  const result = await handshake(read(agent.dir, 'agent'), read(client.dir, 'client'), readFileSync(ca));
  t.deepEqual(result.client, { authorized: true, peerCn: 'old-web' });
  t.deepEqual(result.server, { authorized: true, peerCn: 'old-admin' });

  const renewed = renew(legacy, 'old-admin');
  t.regex(openssl('verify', '-CAfile', ca, join(renewed.dir, 'client.crt')), /client\.crt: OK/);
  revoke(legacy, 'old-web');
  t.regex(openssl('crl', '-in', join(legacy, 'crl.pem'), '-noout', '-text'), /Signature Algorithm: sha256WithRSAEncryption/);
  checkCrl(t, legacy, agentCert, join(renewed.dir, 'client.crt'));
});

test('a CA key that does not belong to the CA certificate signs nothing', (t) => {
  const [a, b] = [createCa('CA a'), createCa('CA b')];
  const mixed = { certPem: a.certPem, keyPem: b.keyPem };
  const mismatch = { instanceOf: PkiError, message: /CA key does not belong to the CA certificate/ };
  t.throws(() => issueCertificate(mixed, { commonName: 'web1', role: 'agent' }), mismatch);
  t.throws(() => createCrl(mixed, [], 1), mismatch);
  t.throws(() => issueCertificate({ certPem: 'garbage', keyPem: b.keyPem }, { commonName: 'web1', role: 'agent' }), {
    instanceOf: PkiError,
    message: /cannot read the CA certificate or key/,
  });
});
