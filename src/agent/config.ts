// Agent configuration: a YAML file (config/agent.yaml documents every key) with
// command-line flags on top. Relative paths in the file are relative to the file.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { ConfigError } from '../errors.js';
import { DEFAULT_AGENT_PORT, DEFAULT_MAX_PAYLOAD, MAX_KEEPALIVE_SECONDS } from '../protocol/constants.js';
import { parseBrokerUrls } from '../broker/broker-urls.js';
import { isPlainName } from '../pki/names.js';
import type { PolicyRule } from './policy.js';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
type LogLevel = (typeof LOG_LEVELS)[number];

/** The `broker:` section: the agent dials out to these NATS brokers and serves sessions through them. */
interface BrokerSettings {
  /** host:port of each broker of the cluster. */
  urls: string[];
  /** The names clients reach this agent by through the broker; default: its certificate's name. Each must be a name in its certificate. */
  names: string[] | undefined;
  /** TLS files for the broker connection; default: the agent's own ca, cert and key (its certificate carries client use for this). */
  ca: string | undefined;
  cert: string | undefined;
  key: string | undefined;
}

export interface AgentConfig {
  /** Address(es) to listen on, comma-separated. */
  host: string;
  /** Listen for direct connections; false (with a broker): outbound connections only. */
  listen: boolean;
  broker: BrokerSettings | undefined;
  port: number;
  ca: string;
  cert: string;
  key: string;
  crl: string | undefined;
  tokenFile: string | undefined;
  logLevel: LogLevel;
  auditLog: string | undefined;
  /** Client name patterns allowed to connect; empty = any certificate of the CA. */
  allowedClients: string[];
  /** Rules of what clients may run; undefined = anything. */
  policy: PolicyRule[] | undefined;
  /** User that commands run as when the agent runs as root (and no rule says otherwise). */
  runAs: string | undefined;
  maxSessions: number;
  maxSessionsPerClient: number;
  /**
   * Connections that are not sessions yet (TCP accepted, handshake or checks under way,
   * or refused and closing), from all sources; beyond it the oldest is dropped.
   */
  maxPendingConnections: number;
  /** The same, from one source address (IPv6: one /64). */
  maxPendingConnectionsPerSource: number;
  maxFrameBytes: number;
  preAuthMaxFrameBytes: number;
  maxArgvBytes: number;
  /** All OPT payloads of one session together (environment, working directory, ...). */
  maxOptionBytes: number;
  /** What all sessions together may hold for messages not yet acted on (options, a command being received). */
  maxPendingBytes: number;
  handshakeTimeoutSeconds: number;
  setupTimeoutSeconds: number;
  idleTimeoutSeconds: number;
  /**
   * Seconds between keepalives while a command runs; a client silent for 3 of them is
   * gone (link down, machine off) and its command is stopped. 0 = none (TCP's own
   * keepalive then notices dead clients after about 12 minutes).
   */
  keepaliveSeconds: number;
  maxCommandSeconds: number;
  killGraceSeconds: number;
  /** On SIGTERM: how long running commands may go on before they are stopped. */
  drainSeconds: number;
  /** How long a client may resume its TLS session (skipping the certificate exchange); 0 = never. */
  tlsSessionSeconds: number;
  /**
   * The agent's cgroup is delegated to it (systemd's Delegate=yes): each command gets a
   * cgroup of its own there (command-cgroup.ts). Read at start only.
   */
  commandCgroups: boolean;
}

/** Values given on the command line; they override the file. Paths relative to cwd. */
export type AgentFlags = Partial<
  Pick<AgentConfig, 'host' | 'port' | 'ca' | 'cert' | 'key' | 'crl' | 'tokenFile' | 'logLevel' | 'commandCgroups' | 'listen'>
> & {
  /** --broker URLS: the broker section's urls (the rest from the file, or defaults). */
  brokerUrls?: string;
};

const DEFAULTS: Omit<AgentConfig, 'ca' | 'cert' | 'key'> = {
  host: '0.0.0.0',
  listen: true,
  broker: undefined,
  port: DEFAULT_AGENT_PORT,
  crl: undefined,
  tokenFile: undefined,
  logLevel: 'info',
  auditLog: undefined,
  allowedClients: [],
  policy: undefined,
  runAs: undefined,
  maxSessions: 256,
  maxSessionsPerClient: 64,
  maxPendingConnections: 256,
  maxPendingConnectionsPerSource: 64,
  maxFrameBytes: DEFAULT_MAX_PAYLOAD,
  preAuthMaxFrameBytes: 4096,
  maxArgvBytes: 256 * 1024,
  maxOptionBytes: 64 * 1024,
  maxPendingBytes: 64 * 1024 * 1024,
  handshakeTimeoutSeconds: 10,
  setupTimeoutSeconds: 30,
  idleTimeoutSeconds: 0,
  keepaliveSeconds: 15,
  maxCommandSeconds: 0,
  killGraceSeconds: 5,
  drainSeconds: 30,
  tlsSessionSeconds: 7200,
  commandCgroups: false,
};

/** Returns the accepted value, or throws a message saying what is wrong (without the key); `base` resolves relative paths. */
type Parse = (value: unknown, base: string) => unknown;

const fail = (message: string): never => {
  throw new Error(message);
};
const nonEmptyString: Parse = (v) => (typeof v === 'string' && v !== '' ? v : fail('must be a non-empty string'));
// One address, a comma-separated list, or a YAML list of them; kept as 'a,b'.
const addressList: Parse = (v) => {
  const list = Array.isArray(v) ? v : typeof v === 'string' ? v.split(',') : [];
  const addresses = list.map((a) => (typeof a === 'string' ? a.trim() : ''));
  return addresses.length > 0 && addresses.every((a) => /^[^\s,]+$/.test(a)) && new Set(addresses).size === addresses.length
    ? addresses.join(',')
    : fail('must be an address or a list of different addresses');
};
const intBetween =
  (min: number, max: number): Parse =>
  (v) =>
    Number.isInteger(v) && (v as number) >= min && (v as number) <= max ? v : fail(`must be an integer from ${min} to ${max}`);
const logLevel: Parse = (v) => ((LOG_LEVELS as readonly unknown[]).includes(v) ? v : fail(`must be one of ${LOG_LEVELS.join(', ')}`));
const userName: Parse = (v) => (typeof v === 'string' && /^[a-z_][a-z0-9_.-]*\$?$/i.test(v) ? v : fail('must be a user name'));
const patternList: Parse = (v) =>
  Array.isArray(v) && v.every((p) => typeof p === 'string' && p !== '' && !p.includes('\0')) ? v : fail('must be a list of non-empty strings');

const boolean: Parse = (x) => (typeof x === 'boolean' ? x : fail('must be true or false'));
const absolutePatternList: Parse = (v) =>
  Array.isArray(v) && v.every((p) => typeof p === 'string' && p.startsWith('/') && !p.includes('\0'))
    ? v
    : fail('must be a list of absolute path patterns');
const RULE_KEYS = ['clients', 'commands', 'shell', 'runAs', 'cwd', 'env', 'pty', 'copy', 'fetch', 'setuid', 'owner'];
const policy: Parse = (v) => {
  if (!Array.isArray(v)) fail(`must be a list of rules (${RULE_KEYS.join(', ')})`);
  return (v as unknown[]).map((rule, i): PolicyRule => {
    const where = `rule ${i + 1}`;
    if (rule === null || typeof rule !== 'object' || Array.isArray(rule)) fail(`${where} must be a mapping`);
    const r = rule as Record<string, unknown>;
    for (const key of Object.keys(r)) if (!RULE_KEYS.includes(key)) fail(`${where}: unknown key '${key}' (known: ${RULE_KEYS.join(', ')})`);
    const field = (key: string, parse: Parse): unknown => {
      try {
        return parse(r[key], '.');
      } catch (err) {
        return fail(`${where}: ${key} ${(err as Error).message}`);
      }
    };
    return {
      clients: field('clients', patternList) as string[],
      commands: r.commands === undefined ? [] : (field('commands', patternList) as string[]),
      shell: r.shell === undefined ? false : (field('shell', boolean) as boolean),
      runAs: r.runAs === undefined ? undefined : (field('runAs', userName) as string),
      cwd: r.cwd === undefined ? false : (field('cwd', boolean) as boolean),
      pty: r.pty === undefined ? false : (field('pty', boolean) as boolean),
      env: r.env === undefined ? [] : (field('env', patternList) as string[]),
      ...(r.copy === undefined ? {} : { copy: field('copy', absolutePatternList) as string[] }),
      ...(r.fetch === undefined ? {} : { fetch: field('fetch', absolutePatternList) as string[] }),
      ...(r.setuid === undefined ? {} : { setuid: field('setuid', boolean) as boolean }),
      ...(r.owner === undefined ? {} : { owner: field('owner', boolean) as boolean }),
    };
  });
};

const BROKER_KEYS = ['urls', 'names', 'ca', 'cert', 'key'];
const brokerSection: Parse = (v, base): BrokerSettings => {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) fail(`must be a mapping (${BROKER_KEYS.join(', ')})`);
  const b = v as Record<string, unknown>;
  for (const key of Object.keys(b)) if (!BROKER_KEYS.includes(key)) fail(`has an unknown key '${key}' (known: ${BROKER_KEYS.join(', ')})`);
  const urls = Array.isArray(b.urls) ? b.urls.join(',') : b.urls;
  if (typeof urls !== 'string' || urls === '') fail('urls must name at least one broker (host:port, or a list of them)');
  const names = b.names === undefined ? undefined : b.names;
  if (names !== undefined && !(Array.isArray(names) && names.length > 0 && names.every((n) => typeof n === 'string' && isPlainName(n)))) {
    fail('names must be a list of plain names (letters, digits, ., -, _)');
  }
  const path = (key: string): string | undefined => {
    const value = b[key];
    if (value === undefined) return undefined;
    return resolve(base, nonEmptyString(value, base) as string);
  };
  let parsedUrls: string[];
  try {
    parsedUrls = parseBrokerUrls(urls as string, 'urls');
  } catch (err) {
    return fail((err as Error).message);
  }
  return { urls: parsedUrls, names: names as string[] | undefined, ca: path('ca'), cert: path('cert'), key: path('key') };
};

const KEYS: Record<keyof AgentConfig, { parse: Parse; path?: boolean }> = {
  host: { parse: addressList },
  listen: { parse: boolean },
  broker: { parse: brokerSection },
  port: { parse: intBetween(0, 65535) },
  ca: { parse: nonEmptyString, path: true },
  cert: { parse: nonEmptyString, path: true },
  key: { parse: nonEmptyString, path: true },
  crl: { parse: nonEmptyString, path: true },
  tokenFile: { parse: nonEmptyString, path: true },
  logLevel: { parse: logLevel },
  auditLog: { parse: nonEmptyString, path: true },
  allowedClients: { parse: patternList },
  policy: { parse: policy },
  runAs: { parse: userName },
  maxSessions: { parse: intBetween(1, 100000) },
  maxSessionsPerClient: { parse: intBetween(1, 100000) },
  maxPendingConnections: { parse: intBetween(1, 100000) },
  maxPendingConnectionsPerSource: { parse: intBetween(1, 100000) },
  maxFrameBytes: { parse: intBetween(1024, 64 * 1024 * 1024) },
  preAuthMaxFrameBytes: { parse: intBetween(256, 1024 * 1024) },
  maxArgvBytes: { parse: intBetween(1024, 16 * 1024 * 1024) },
  maxOptionBytes: { parse: intBetween(1024, 16 * 1024 * 1024) },
  maxPendingBytes: { parse: intBetween(1024 * 1024, 64 * 1024 * 1024 * 1024) },
  handshakeTimeoutSeconds: { parse: intBetween(1, 600) },
  setupTimeoutSeconds: { parse: intBetween(1, 3600) },
  idleTimeoutSeconds: { parse: intBetween(0, 7 * 24 * 3600) },
  keepaliveSeconds: { parse: intBetween(0, MAX_KEEPALIVE_SECONDS) },
  maxCommandSeconds: { parse: intBetween(0, 30 * 24 * 3600) },
  killGraceSeconds: { parse: intBetween(0, 3600) },
  drainSeconds: { parse: intBetween(0, 3600) },
  // TLS 1.3 caps ticket lifetimes at 7 days.
  tlsSessionSeconds: { parse: intBetween(0, 7 * 24 * 3600) },
  commandCgroups: { parse: boolean },
};

function accept(key: string, value: unknown, where: string, base: string | undefined): unknown {
  const spec = KEYS[key as keyof AgentConfig];
  if (!spec) throw new ConfigError(`${where}unknown setting '${key}' (known: ${Object.keys(KEYS).join(', ')})`);
  let parsed: unknown;
  try {
    parsed = spec.parse(value, base ?? '.');
  } catch (err) {
    throw new ConfigError(`${where}${key} ${(err as Error).message}, got ${JSON.stringify(value)}`);
  }
  return spec.path ? resolve(base ?? '.', parsed as string) : parsed;
}

/** Reads and validates a config file; returns only the keys it sets. */
export function readConfigFile(file: string): Partial<AgentConfig> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`${file}: cannot read: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
  let data: unknown;
  try {
    data = parseYaml(text);
  } catch (err) {
    // The yaml package ends its first line with " at line L, column C:": said once, here.
    const reason = (err as Error).message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
    const where = err instanceof YAMLParseError && err.linePos ? `line ${err.linePos[0].line}, column ${err.linePos[0].col}: ` : '';
    throw new ConfigError(`${file}: ${where}invalid YAML: ${reason}`);
  }
  if (data === null || data === undefined) return {};
  if (typeof data !== 'object' || Array.isArray(data)) throw new ConfigError(`${file}: must be a mapping of settings`);
  const config: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(data as Record<string, unknown>)) {
    if (value === null) continue;
    config[key] = accept(key, value, `${file}: `, dirname(file));
  }
  return config as Partial<AgentConfig>;
}

/** Merges defaults, the optional file and the flags, and checks that nothing required is missing. */
export function loadAgentConfig(file: string | undefined, flags: AgentFlags): AgentConfig {
  const fromFile = file ? readConfigFile(file) : {};
  const fromFlags: Record<string, unknown> = {};
  const { brokerUrls, ...ordinary } = flags;
  for (const [key, value] of Object.entries(ordinary)) {
    if (value !== undefined) fromFlags[key] = accept(key, value, `--${kebab(key)}: `, undefined);
  }
  const merged = { ...DEFAULTS, ...fromFile, ...fromFlags } as Partial<AgentConfig>;
  if (brokerUrls !== undefined) {
    const urls = accept('broker', { urls: brokerUrls }, '--', undefined) as BrokerSettings;
    merged.broker = { ...(merged.broker ?? { names: undefined, ca: undefined, cert: undefined, key: undefined }), urls: urls.urls };
  }
  if (merged.listen === false && !merged.broker) {
    throw new ConfigError('listen is false and no broker is configured: the agent could not be reached at all');
  }
  for (const required of ['ca', 'cert', 'key'] as const) {
    if (!merged[required]) {
      throw new ConfigError(`no ${required} file configured: set '${required}' in the config file or pass --${required}`);
    }
  }
  return merged as AgentConfig;
}

/** The addresses the agent listens on. */
export function listenAddresses(config: Pick<AgentConfig, 'host'>): string[] {
  return config.host.split(',');
}

function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}
