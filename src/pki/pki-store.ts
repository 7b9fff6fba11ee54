// The PKI directory on disk: creating the CA, issuing agent and client bundles, and
// the record of what was issued. Private keys are 0600 in 0700 directories, always.
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { PkiError } from '../errors.js';
import { checkIp, checkName, createCa, issueCertificate, type KeyAndCert, type Role } from './certificates.js';
import { PkiFiles } from './pki-paths.js';

export interface IssuedRecord {
  serial: string;
  name: string;
  role: Role | 'ca';
  notAfter: string;
  issuedAt: string;
}

export interface Bundle {
  dir: string;
  files: string[];
  serial: string;
  notAfter: Date;
  altNames: string[];
}

/** Creates `dir` and any missing parents with mode 0700 (whatever the umask). */
function makePrivateDir(dir: string): void {
  const missing: string[] = [];
  for (let d = resolve(dir); !existsSync(d); d = dirname(d)) missing.unshift(d);
  for (const d of missing) {
    mkdirSync(d);
    chmodSync(d, 0o700);
  }
}

/** Writes a file atomically (temp file + rename) with an exact mode. */
function writeFileWithMode(file: string, content: string, mode: number): void {
  const temp = `${file}.tmp-${process.pid}`;
  const fd = openSync(temp, 'w', mode);
  try {
    writeSync(fd, content);
  } finally {
    closeSync(fd);
  }
  chmodSync(temp, mode); // openSync's mode is filtered by the umask
  renameSync(temp, file);
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
  const file = join(dir, PkiFiles.ISSUED);
  let records: IssuedRecord[] = [];
  if (existsSync(file)) {
    try {
      records = JSON.parse(readFileSync(file, 'utf8')) as IssuedRecord[];
    } catch (err) {
      throw new PkiError(`${file} is not valid JSON (${(err as Error).message}); fix or remove it`);
    }
  }
  records.push(record);
  writeFileWithMode(file, `${JSON.stringify(records, null, 2)}\n`, 0o600);
}

export function readIssued(dir: string): IssuedRecord[] {
  const file = join(dir, PkiFiles.ISSUED);
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as IssuedRecord[]) : [];
}

export interface InitResult {
  dir: string;
  caCert: string;
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
  writeFileWithMode(caKey, ca.keyPem, 0o600);
  writeFileWithMode(caCert, ca.certPem, 0o644);
  appendIssued(dir, { serial: 'ca', name: 'ca', role: 'ca', notAfter: '', issuedAt: new Date().toISOString() });
  const client = writeBundle(dir, ca, { name: 'admin', role: 'client', out: dir, force: true });
  return { dir, caCert, client };
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
  const certFile = request.role === 'agent' ? PkiFiles.AGENT_CERT : PkiFiles.CLIENT_CERT;
  const keyFile = request.role === 'agent' ? PkiFiles.AGENT_KEY : PkiFiles.CLIENT_KEY;
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
    commonName: request.name, role: request.role, dnsNames: dns, ipAddresses: ips, days: request.days,
  });
  makePrivateDir(request.out);
  writeFileWithMode(keyPath, issued.keyPem, 0o600);
  writeFileWithMode(join(request.out, certFile), issued.certPem, 0o644);
  const files = [join(request.out, certFile), keyPath];
  if (resolve(request.out) !== resolve(dir)) {
    writeFileWithMode(join(request.out, PkiFiles.CA_CERT), ca.certPem, 0o644);
    files.push(join(request.out, PkiFiles.CA_CERT));
  }
  appendIssued(dir, {
    serial: issued.serial, name: request.name, role: request.role,
    notAfter: issued.notAfter.toISOString(), issuedAt: new Date().toISOString(),
  });
  return {
    dir: request.out, files, serial: issued.serial, notAfter: issued.notAfter,
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

/** An agent bundle (agent.crt, agent.key, ca.crt), by default in DIR/agents/NAME. */
export function issueAgentBundle(dir: string, name: string, options: IssueOptions = {}): Bundle {
  checkName(name, 'agent name');
  const ca = loadCa(dir);
  return writeBundle(dir, ca, {
    ...options, name, role: 'agent', out: options.out ?? join(dir, PkiFiles.AGENTS_DIR, name),
  });
}

/** A client bundle (client.crt, client.key, ca.crt), by default in DIR/clients/NAME. */
export function issueClientBundle(dir: string, name: string, options: Omit<IssueOptions, 'ips' | 'dns'> = {}): Bundle {
  checkName(name, 'client name');
  const ca = loadCa(dir);
  return writeBundle(dir, ca, {
    ...options, name, role: 'client', out: options.out ?? join(dir, PkiFiles.CLIENTS_DIR, name),
  });
}
