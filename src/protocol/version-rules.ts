// What each protocol version allows, as the wire format defines it (docs/protocol.md).
// Pure: no I/O; the agent's session applies these rules, and a client may.
import { PTY_VERSION, SUPPORTED_VERSIONS } from './constants.js';
import type { SessionOptions } from './messages.js';

/** The version chosen from a client's offer: the highest both ends speak; undefined when they share none. */
export function chooseVersion(offered: readonly number[]): number | undefined {
  const common = offered.filter((v) => SUPPORTED_VERSIONS.includes(v));
  return common.length > 0 ? Math.max(...common) : undefined;
}

/** Why the options asked for do not fit `version` (or each other); undefined when they do. */
export function optionsProblem(options: Pick<SessionOptions, 'pty' | 'term'>, version: number): string | undefined {
  const { pty, term } = options;
  if ((pty || term !== undefined) && version < PTY_VERSION) return `options pty and term need protocol version ${PTY_VERSION}`;
  if (term !== undefined && !pty) return 'option term needs the pty option';
  return undefined;
}
