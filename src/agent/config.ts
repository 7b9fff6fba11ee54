// Agent configuration: a YAML file (config/agent.yaml documents every key) with
// command-line flags on top. Relative paths in the file are relative to the file.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { ConfigError } from '../errors.js';
import { DEFAULT_AGENT_PORT, DEFAULT_MAX_PAYLOAD } from '../protocol/constants.js';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface AgentConfig {
  host: string;
  port: number;
  ca: string;
  cert: string;
  key: string;
  tokenFile: string | undefined;
  logLevel: LogLevel;
  maxSessions: number;
  maxFrameBytes: number;
  setupTimeoutSeconds: number;
  killGraceSeconds: number;
}

/** Values given on the command line; they override the file. Paths relative to cwd. */
export type AgentFlags = Partial<Pick<AgentConfig, 'host' | 'port' | 'ca' | 'cert' | 'key' | 'tokenFile' | 'logLevel'>>;

const DEFAULTS = {
  host: '0.0.0.0',
  port: DEFAULT_AGENT_PORT,
  logLevel: 'info' as LogLevel,
  maxSessions: 256,
  maxFrameBytes: DEFAULT_MAX_PAYLOAD,
  setupTimeoutSeconds: 30,
  killGraceSeconds: 5,
};

type Check = (value: unknown) => string | undefined;

const isString: Check = (v) => (typeof v === 'string' && v !== '' ? undefined : 'must be a non-empty string');
const intBetween = (min: number, max: number): Check => (v) =>
  Number.isInteger(v) && (v as number) >= min && (v as number) <= max ? undefined : `must be an integer from ${min} to ${max}`;
const isLogLevel: Check = (v) =>
  (LOG_LEVELS as readonly unknown[]).includes(v) ? undefined : `must be one of ${LOG_LEVELS.join(', ')}`;

const KEYS: Record<keyof AgentConfig, { check: Check; path?: boolean }> = {
  host: { check: isString },
  port: { check: intBetween(0, 65535) },
  ca: { check: isString, path: true },
  cert: { check: isString, path: true },
  key: { check: isString, path: true },
  tokenFile: { check: isString, path: true },
  logLevel: { check: isLogLevel },
  maxSessions: { check: intBetween(1, 100000) },
  maxFrameBytes: { check: intBetween(1024, 64 * 1024 * 1024) },
  setupTimeoutSeconds: { check: intBetween(1, 3600) },
  killGraceSeconds: { check: intBetween(0, 3600) },
};

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
    const where = err instanceof YAMLParseError && err.linePos ? `line ${err.linePos[0].line}: ` : '';
    throw new ConfigError(`${file}: ${where}invalid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (data === null || data === undefined) return {};
  if (typeof data !== 'object' || Array.isArray(data)) throw new ConfigError(`${file}: must be a mapping of settings`);
  const config: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(data as Record<string, unknown>)) {
    const spec = KEYS[key as keyof AgentConfig];
    if (!spec) throw new ConfigError(`${file}: unknown setting '${key}' (known: ${Object.keys(KEYS).join(', ')})`);
    if (value === null) continue;
    const problem = spec.check(value);
    if (problem) throw new ConfigError(`${file}: ${key} ${problem}, got ${JSON.stringify(value)}`);
    config[key] = spec.path ? resolve(dirname(file), value as string) : value;
  }
  return config as Partial<AgentConfig>;
}

/** Merges defaults, the optional file and the flags, and checks that nothing required is missing. */
export function loadAgentConfig(file: string | undefined, flags: AgentFlags): AgentConfig {
  const fromFile = file ? readConfigFile(file) : {};
  const fromFlags: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(flags)) {
    if (value === undefined) continue;
    const spec = KEYS[key as keyof AgentConfig];
    const problem = spec.check(value);
    if (problem) throw new ConfigError(`--${kebab(key)} ${problem}, got ${JSON.stringify(value)}`);
    fromFlags[key] = spec.path ? resolve(value as string) : value;
  }
  const merged = { ...DEFAULTS, tokenFile: undefined, ...fromFile, ...fromFlags } as Partial<AgentConfig>;
  for (const required of ['ca', 'cert', 'key'] as const) {
    if (!merged[required]) {
      throw new ConfigError(`no ${required} file configured: set '${required}' in the config file or pass --${required}`);
    }
  }
  return merged as AgentConfig;
}

function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}
