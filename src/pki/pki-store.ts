// The PKI directory on disk: creating the CA, issuing agent and client bundles, and
// the record of what was issued. Private keys are 0600 in 0700 directories, always.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { PkiError } from '../errors.js';
import { ensurePrivateDir, makePrivateDir, writeFileWithMode } from '../private-files.js';
import { checkIp, checkName, createCa, createCrl, issueCertificate, type KeyAndCert, type Role } from './certificates.js';
import { BundleFiles, PkiFiles } from './pki-paths.js';

export interface IssuedRecord {
  serial: string;
  name: string;
  role: Role | 'ca';
  notAfter: string;
  issuedAt: string;
  /** Subject alternative names and bundle directory, so `certs renew` can re-issue alike. */
  dns?: string[];
  ips?: string[];
  out?: string;
  revokedAt?: string;
}

export interface Bundle {
  dir: string;
  files: string[];
  serial: string;
  notAfter: Date;
  altNames: string[];
}

/**
 * A private key's directory is 0700, also when it existed before with a wider mode. A
 * shared directory (sticky, like /tmp, or someone else's) is refused rather than narrowed.
 */
function writePrivateKey(file: string, content: string): void {
  const dir = dirname(file);
  if (!ensurePrivateDir(dir)) {
    const { mode } = statSync(dir);
    throw new PkiError(
      `${dir} is a shared directory (mode ${(mode & 0o7777).toString(8)}); private keys need a directory of their own (choose another --out)`,
    );
  }
  writeFileWithMode(file, content, 0o600);
}

function loadCa(dir: string): KeyAndCert {
  try {
    return {
      certPem: readFileSync(join(dir, PkiFiles.CA_CERT), 'utf8'),
      keyPem: readFileSync(join(dir, PkiFiles.CA_KEY), 'utf8'),
    };
  } catch {
    throw new PkiError(`no CA in ${dir}; create one with 'distrun certs init --dir ${dir}'`);
  }
}

function appendIssued(dir: string, record: IssuedRecord): void {
  writeIssued(dir, [...readIssued(dir), record]);
}

function writeIssued(dir: string, records: IssuedRecord[]): void {
  writeFileWithMode(join(dir, PkiFiles.ISSUED), `${JSON.stringify(records, null, 2)}\n`, 0o600);
}

export function readIssued(dir: string): IssuedRecord[] {
  const file = join(dir, PkiFiles.ISSUED);
  if (!existsSync(file)) return [];
  try {
    const records = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    if (!Array.isArray(records)) throw new Error('not a list');
    return records as IssuedRecord[];
  } catch (err) {
    throw new PkiError(`${file} is not a valid record of issued certificates (${(err as Error).message}); fix or remove it`);
  }
}

export interface InitResult {
  dir: string;
  /** Path of the CA certificate (DIR/ca.crt). */
  caCert: string;
  /** Path of the admin client certificate (DIR/client.crt). */
  clientCert: string;
  client: Bundle;
}

/** A new CA and the admin client identity in `dir`. */
export function initPki(dir: string, options: { force?: boolean } = {}): InitResult {
  const caCert = join(dir, PkiFiles.CA_CERT);
  const caKey = join(dir, PkiFiles.CA_KEY);
  if (!options.force && (existsSync(caCert) || existsSync(caKey))) {
    throw new PkiError(`a CA already exists in ${dir} (use --force to replace it; every certificate it issued stops working)`);
  }
  makePrivateDir(dir);
  const date = new Date().toISOString().slice(0, 10);
  const ca = createCa(`DistRunner CA ${hostname()} ${date}`);
  writePrivateKey(caKey, ca.keyPem);
  writeFileWithMode(caCert, ca.certPem, 0o644);
  appendIssued(dir, { serial: 'ca', name: 'ca', role: 'ca', notAfter: '', issuedAt: new Date().toISOString() });
  const client = writeBundle(dir, ca, { name: 'admin', role: 'client', out: dir, force: true });
  return { dir, caCert, clientCert: join(dir, PkiFiles.CLIENT_CERT), client };
}

interface BundleRequest {
  name: string;
  role: Role;
  out: string;
  ips?: string[];
  dns?: string[];
  days?: number;
  force?: boolean;
}

function writeBundle(dir: string, ca: KeyAndCert, request: BundleRequest): Bundle {
  const { cert: certFile, key: keyFile } = BundleFiles[request.role];
  const keyPath = join(request.out, keyFile);
  if (!request.force && existsSync(keyPath)) {
    throw new PkiError(`${keyPath} already exists (use --force to issue a new key and certificate)`);
  }
  const ips = (request.ips ?? []).map(checkIp);
  const dns = (request.dns ?? []).map((n) => checkName(n, 'DNS name'));
  // The name itself is always a subject alternative name, as an IP if it is one.
  if (isIP(request.name)) {
    if (!ips.includes(request.name)) ips.unshift(request.name);
  } else if (!dns.includes(request.name)) {
    dns.unshift(request.name);
  }
  const issued = issueCertificate(ca, {
    commonName: request.name,
    role: request.role,
    dnsNames: dns,
    ipAddresses: ips,
    days: request.days,
  });
  makePrivateDir(request.out);
  writePrivateKey(keyPath, issued.keyPem);
  writeFileWithMode(join(request.out, certFile), issued.certPem, 0o644);
  const files = [join(request.out, certFile), keyPath];
  if (resolve(request.out) !== resolve(dir)) {
    writeFileWithMode(join(request.out, PkiFiles.CA_CERT), ca.certPem, 0o644);
    files.push(join(request.out, PkiFiles.CA_CERT));
  }
  appendIssued(dir, {
    serial: issued.serial,
    name: request.name,
    role: request.role,
    notAfter: issued.notAfter.toISOString(),
    issuedAt: new Date().toISOString(),
    dns,
    ips,
    out: resolve(request.out),
  });
  return {
    dir: request.out,
    files,
    serial: issued.serial,
    notAfter: issued.notAfter,
    altNames: [...dns.map((d) => `DNS:${d}`), ...ips.map((i) => `IP:${i}`)],
  };
}

export interface IssueOptions {
  out?: string;
  ips?: string[];
  dns?: string[];
  days?: number;
  force?: boolean;
}

/** A bundle of ROLE (its certificate, its key and ca.crt), by default in DIR/<role>s/NAME. */
function issueBundle(dir: string, role: Role, name: string, options: IssueOptions): Bundle {
  checkName(name, `${role} name`);
  const ca = loadCa(dir);
  return writeBundle(dir, ca, { ...options, name, role, out: options.out ?? join(dir, BundleFiles[role].dir, name) });
}

/** An agent bundle (agent.crt, agent.key, ca.crt), by default in DIR/agents/NAME. */
export function issueAgentBundle(dir: string, name: string, options: IssueOptions = {}): Bundle {
  return issueBundle(dir, 'agent', name, options);
}

/** A client bundle (client.crt, client.key, ca.crt), by default in DIR/clients/NAME. */
export function issueClientBundle(dir: string, name: string, options: Omit<IssueOptions, 'ips' | 'dns'> = {}): Bundle {
  return issueBundle(dir, 'client', name, options);
}

/**
 * A broker bundle (broker.crt, broker.key, ca.crt), by default in DIR/brokers/NAME: for a
 * NATS server of the fleet, named by the addresses agents and clients dial it at.
 */
export function issueBrokerBundle(dir: string, name: string, options: IssueOptions = {}): Bundle {
  return issueBundle(dir, 'broker', name, options);
}

/** Marks every certificate matching NAME or SERIAL revoked and publishes a new CRL. */
export function revoke(dir: string, nameOrSerial: string): { revoked: IssuedRecord[]; crl: string } {
  const records = readIssued(dir);
  const wanted = nameOrSerial.toLowerCase().replace(/:/g, '');
  const matches = records.filter((r) => r.role !== 'ca' && !r.revokedAt && (r.serial === wanted || r.name === nameOrSerial));
  if (matches.length === 0) {
    const already = records.some((r) => r.revokedAt && (r.serial === wanted || r.name === nameOrSerial));
    throw new PkiError(
      already
        ? `every certificate matching '${nameOrSerial}' is already revoked`
        : `no issued certificate has the name or serial '${nameOrSerial}' (see 'distrun certs list')`,
    );
  }
  const now = new Date().toISOString();
  for (const record of matches) record.revokedAt = now;
  writeIssued(dir, records);
  return { revoked: matches, crl: publishCrl(dir) };
}

/** Writes DIR/crl.pem listing every revoked certificate; returns its path. */
export function publishCrl(dir: string): string {
  const ca = loadCa(dir);
  const revoked = readIssued(dir)
    .filter((r) => r.revokedAt)
    .map((r) => ({ serial: r.serial, revokedAt: new Date(r.revokedAt!) }));
  const file = join(dir, PkiFiles.CRL);
  // CRL numbers must grow: seconds since the epoch do, across every machine that signs.
  writeFileWithMode(file, createCrl(ca, revoked, Math.floor(Date.now() / 1000)), 0o644);
  return file;
}

/** Re-issues the newest valid certificate named NAME: same role, names and directory, new key. */
export function renew(dir: string, name: string, options: { days?: number } = {}): Bundle {
  const record = readIssued(dir)
    .filter((r) => r.name === name && r.role !== 'ca' && !r.revokedAt)
    .pop();
  if (!record || record.role === 'ca') throw new PkiError(`no valid certificate named '${name}' to renew (see 'distrun certs list')`);
  const ca = loadCa(dir);
  return writeBundle(dir, ca, {
    name,
    role: record.role,
    out: record.out ?? join(dir, BundleFiles[record.role].dir, name),
    ips: record.ips,
    dns: record.dns,
    days: options.days,
    force: true,
  });
}
