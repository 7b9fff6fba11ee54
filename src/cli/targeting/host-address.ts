// Host names and ports as distrun's own inventory and -H/-x take them.
import { isIP } from 'node:net';

const HOST_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

export function portProblem(value: unknown): string | undefined {
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 65535) return undefined;
  return `port must be an integer from 1 to 65535, got ${JSON.stringify(value)}`;
}

export function validHostName(name: string): boolean {
  return HOST_NAME.test(name) || isIP(name) !== 0;
}

/** `web1:7000`, `[2001:db8::5]:7000`: the inverse of splitHostPort. */
export function joinHostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** Splits `host`, `host:port` or `[v6]:port`. A bare IPv6 address has no port. */
export function splitHostPort(spec: string): { host: string; port: string | undefined } {
  const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(spec);
  if (bracketed) return { host: bracketed[1]!, port: bracketed[2] };
  if (isIP(spec) === 6) return { host: spec, port: undefined };
  const colon = spec.lastIndexOf(':');
  if (colon < 0) return { host: spec, port: undefined };
  return { host: spec.slice(0, colon), port: spec.slice(colon + 1) };
}
