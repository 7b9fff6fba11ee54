// Everything the agent derives from its configuration and files: TLS material, token,
// policy, run-as users, audit sink. Built whole or not at all, so a reload with broken
// or half-written files keeps the previous runtime.
import { X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import * as tls from 'node:tls';
import type { Logger } from 'pino';
import { ConfigError, messageOf } from '../errors.js';
import { readCrl } from '../pki/crl.js';
import { weakCertificateInFile } from '../pki/key-strength.js';
import { FileAuditSink, LogAuditSink, type AuditSink } from './audit.js';
import type { AgentConfig } from './config.js';
import { agentUser, lookupUser, type LocalUser } from './local-users.js';
import { tokenOf } from '../token-file.js';
import { tokenDigest } from './token-digest.js';

interface TlsMaterial {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
  /** The CRL, checked against the CA (crl.ts), as exactly the bytes that were checked. */
  crl?: string;
}

/** What the agent logs in to the broker with, and the names it answers to there (config `broker:`). */
interface BrokerRuntime {
  urls: string[];
  names: string[];
  files: { ca: Buffer; cert: Buffer; key: Buffer };
}

export interface AgentRuntime {
  config: AgentConfig;
  tls: TlsMaterial;
  broker: BrokerRuntime | undefined;
  tokenDigest: Buffer | undefined;
  /** The agent's own user; commands run as it unless a run-as user applies. */
  agentUser: LocalUser;
  /** Run-as users named by the configuration, resolved. */
  users: Map<string, LocalUser>;
  audit: AuditSink;
}

function readSecretFile(what: string, file: string): Buffer {
  let mode: number;
  try {
    mode = statSync(file).mode;
  } catch (err) {
    throw new ConfigError(`cannot read ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
  if ((mode & 0o077) !== 0) {
    throw new ConfigError(`${what} ${file} is readable by group or others (mode ${(mode & 0o777).toString(8)}); run: chmod 600 ${file}`);
  }
  return readFile(what, file);
}

function readFile(what: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new ConfigError(`cannot read ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
}

function resolveUsers(config: AgentConfig, self: LocalUser): Map<string, LocalUser> {
  const names = new Set<string>();
  if (config.runAs) names.add(config.runAs);
  for (const rule of config.policy ?? []) if (rule.runAs) names.add(rule.runAs);
  const users = new Map<string, LocalUser>();
  for (const name of names) {
    const user = lookupUser(name);
    if (self.uid !== 0 && user.uid !== self.uid) {
      throw new ConfigError(`runAs '${name}' needs the agent to run as root (it runs as ${self.name})`);
    }
    users.set(name, user);
  }
  return users;
}

export function loadRuntime(config: AgentConfig, log: Logger): AgentRuntime {
  const material: TlsMaterial = {
    ca: readFile('CA certificate', config.ca),
    cert: readFile('certificate', config.cert),
    key: readSecretFile('private key', config.key),
  };
  for (const [what, file, pem] of [
    ['certificate', config.cert, material.cert],
    ['CA certificate', config.ca, material.ca],
  ] as const) {
    const weak = weakCertificateInFile(pem);
    if (weak) throw new ConfigError(`${what} ${file} is too weak: ${weak}`);
  }
  if (config.crl) {
    const text = readFile('CRL', config.crl).toString('latin1');
    try {
      material.crl = readCrl(text, material.ca.toString('latin1')).pem;
    } catch (err) {
      throw new ConfigError(`cannot use the CRL ${config.crl}: ${messageOf(err)}`);
    }
  }
  try {
    // Validates the files up front: a bad key, a key that does not match the
    // certificate, or a broken CRL is a configuration error, not a failed handshake.
    tls.createSecureContext(material);
  } catch (err) {
    const files = [config.cert, config.key, config.ca, config.crl].filter(Boolean).join(', ');
    throw new ConfigError(`cannot use the TLS files (${files}): ${(err as Error).message}`);
  }
  let digest: Buffer | undefined;
  if (config.tokenFile) {
    const token = tokenOf(readSecretFile('token file', config.tokenFile).toString('utf8'));
    if (token === undefined) throw new ConfigError(`token file ${config.tokenFile} is empty`);
    digest = tokenDigest(Buffer.from(token, 'utf8'));
  }
  const self = agentUser();
  const users = resolveUsers(config, self);
  const audit = config.auditLog ? new FileAuditSink(config.auditLog) : new LogAuditSink(log);
  return { config, tls: material, broker: loadBroker(config, material), tokenDigest: digest, agentUser: self, users, audit };
}

function loadBroker(config: AgentConfig, material: TlsMaterial): BrokerRuntime | undefined {
  const { broker } = config;
  if (!broker) return undefined;
  const files = {
    ca: broker.ca ? readFile('broker CA certificate', broker.ca) : material.ca,
    cert: broker.cert ? readFile('broker certificate', broker.cert) : material.cert,
    key: broker.key ? readSecretFile('broker private key', broker.key) : material.key,
  };
  return { urls: broker.urls, names: brokerNames(broker.names, material.cert, config.cert), files };
}

/**
 * The names an agent answers to through a broker: the configured ones, each of which its
 * certificate must name (a client checks the name inside the session, as on a direct
 * connection); by default the certificate's common name.
 */
function brokerNames(configured: string[] | undefined, certPem: Buffer, certFile: string): string[] {
  const cert = new X509Certificate(certPem);
  if (configured === undefined) {
    const cn = /^CN=(.+)$/m.exec(cert.subject)?.[1];
    if (!cn) throw new ConfigError(`${certFile} names no common name: set broker.names`);
    return [cn];
  }
  for (const name of configured) {
    if (!cert.checkHost(name, { subject: 'never' }) && !cert.checkIP(name)) {
      throw new ConfigError(`broker.names: ${name} is not a name in this agent's certificate (${certFile}); clients would refuse it`);
    }
  }
  return configured;
}
