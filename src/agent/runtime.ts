// Everything the agent derives from its configuration and files: TLS material, token,
// policy, run-as users, audit sink. Built whole or not at all, so a reload with broken
// or half-written files keeps the previous runtime.
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

export interface AgentRuntime {
  config: AgentConfig;
  tls: TlsMaterial;
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
  return { config, tls: material, tokenDigest: digest, agentUser: self, users, audit };
}
