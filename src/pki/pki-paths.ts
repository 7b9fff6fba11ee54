// Where a PKI directory keeps its files, and loading the client identity. Kept free of
// node-forge so that `distrun` starts quickly.
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { PkiError } from '../errors.js';
import { describeSystemError } from '../system-errors.js';

export const PkiFiles = {
  CA_CERT: 'ca.crt',
  CA_KEY: 'ca.key',
  CLIENT_CERT: 'client.crt',
  CLIENT_KEY: 'client.key',
  AGENT_CERT: 'agent.crt',
  AGENT_KEY: 'agent.key',
  ISSUED: 'issued.json',
  CRL: 'crl.pem',
  AGENTS_DIR: 'agents',
  CLIENTS_DIR: 'clients',
  BROKER_CERT: 'broker.crt',
  BROKER_KEY: 'broker.key',
  BROKERS_DIR: 'brokers',
} as const;

/** Each role's bundle: its certificate and key file names, and where DIR keeps its bundles. */
export const BundleFiles = {
  agent: { cert: PkiFiles.AGENT_CERT, key: PkiFiles.AGENT_KEY, dir: PkiFiles.AGENTS_DIR },
  client: { cert: PkiFiles.CLIENT_CERT, key: PkiFiles.CLIENT_KEY, dir: PkiFiles.CLIENTS_DIR },
  broker: { cert: PkiFiles.BROKER_CERT, key: PkiFiles.BROKER_KEY, dir: PkiFiles.BROKERS_DIR },
} as const;

export function defaultPkiDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.DISTRUN_PKI || join(homedir(), '.config', 'distrun', 'pki');
}

interface ClientIdentity {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

/** The CA certificate and the client certificate and key that `distrun` connects with. */
export function loadClientIdentity(dir: string): ClientIdentity {
  const read = (file: string): Buffer => {
    try {
      return readFileSync(join(dir, file));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const why = code === 'ENOENT' ? `${file} missing` : `cannot read ${file}: ${describeSystemError(err)}`;
      throw new PkiError(`no usable client identity in ${dir} (${why}); create one with 'distrun certs init --dir ${dir}'`);
    }
  };
  return { ca: read(PkiFiles.CA_CERT), cert: read(PkiFiles.CLIENT_CERT), key: read(PkiFiles.CLIENT_KEY) };
}
