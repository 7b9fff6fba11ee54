// Who may connect and what they may run. Pure: names and argv in, decisions out.
import { posix } from 'node:path';
import { matchesWildcard } from '../wildcard.js';

/** One rule of the agent's policy: which clients may run which commands, and as whom. */
export interface PolicyRule {
  /** Client name patterns, matched against the client's one name (pki/client-name.ts). */
  clients: string[];
  /** argv[0] patterns: exact (`uptime`, `/usr/bin/df`) or with `*` wildcards (`/usr/bin/*`). */
  commands: string[];
  /** Whether `--shell` (a /bin/sh script) is allowed. */
  shell: boolean;
  /** Local user to run as; default: the agent's `runAs`. */
  runAs?: string;
  /** Whether the client may choose the working directory (`--cwd`). */
  cwd?: boolean;
  /** Environment variable name patterns the client may set (`--env`); default none. */
  env?: string[];
  /** Whether the client may run the command in a pseudo-terminal (`--tty`). */
  pty?: boolean;
  /** Path patterns (absolute, `*` wildcards) the client may write with `distrun copy`; default none. */
  copy?: string[];
  /** Path patterns (absolute, `*` wildcards) the client may read with `distrun fetch`; default none. */
  fetch?: string[];
  /** Whether copied files may keep setuid and setgid bits (`copy -p`). */
  setuid?: boolean;
  /** Whether the client may choose the owner of copied files (`copy --owner`). */
  owner?: boolean;
}

/** What a command asks for besides its argv, as far as policy is concerned. */
interface CommandRequest {
  shell: boolean;
  cwd?: string;
  envNames: readonly string[];
  /** In a pseudo-terminal (`--tty`). */
  pty?: boolean;
}

type Decision =
  /** `program` is argv[0] as matched, and as it must be executed (paths normalized). */
  { allowed: true; program: string; runAs: string | undefined; rule: number | undefined } | { allowed: false; reason: string };

/**
 * A path is normalized (`/usr/bin/../../bin/sh` is `/bin/sh`) before it is matched, and
 * the agent executes the normalized path, so what runs is what the rule allowed.
 */
function normalizeProgram(program: string): string {
  return program.includes('/') ? posix.normalize(program) : program;
}

function anyMatch(patterns: readonly string[], name: string): boolean {
  return patterns.some((p) => matchesWildcard(p, name));
}

/** Empty allowlist: every certificate of the CA; otherwise the client's name must match a pattern. */
export function isClientAllowed(allowedClients: readonly string[], name: string): boolean {
  return allowedClients.length === 0 || anyMatch(allowedClients, name);
}

/**
 * Without rules every authenticated client may run anything. With rules, a command is
 * allowed by the first rule that matches the client and the command; otherwise denied.
 */
export function authorize(rules: readonly PolicyRule[] | undefined, client: string, argv: readonly string[], request: CommandRequest): Decision {
  const program = normalizeProgram(argv[0] ?? '');
  if (!rules) return { allowed: true, program, runAs: undefined, rule: undefined };
  let clientHasRule = false;
  let commandAllowed = false;
  for (const [index, rule] of rules.entries()) {
    if (!anyMatch(rule.clients, client)) continue;
    clientHasRule = true;
    if (!(request.shell ? rule.shell : rule.commands.some((c) => matchesWildcard(c, program)))) continue;
    commandAllowed = true;
    // The same rule must also allow the working directory and environment asked for.
    if (request.cwd !== undefined && !rule.cwd) continue;
    if (!request.envNames.every((name) => (rule.env ?? []).some((p) => matchesWildcard(p, name)))) continue;
    if (request.pty && !rule.pty) continue;
    return { allowed: true, program, runAs: rule.runAs, rule: index };
  }
  if (!clientHasRule) return { allowed: false, reason: `no policy rule for client ${client}` };
  if (commandAllowed) {
    const what = request.cwd !== undefined ? '--cwd' : request.envNames.length > 0 ? `--env ${request.envNames.join(', ')}` : 'a terminal (--tty)';
    return { allowed: false, reason: `${what} is not allowed for this client and command` };
  }
  if (request.shell) return { allowed: false, reason: 'shell commands are not allowed for this client' };
  return { allowed: false, reason: `command ${JSON.stringify(program.slice(0, 200))} is not allowed for this client` };
}

type TransferDecision =
  /** `paths`: the patterns the receiver or sender enforces; undefined: anything the run-as user may write or read. */
  { allowed: true; paths: string[] | undefined; runAs: string | undefined; setuid: boolean; owner: boolean } | { allowed: false; reason: string };

/**
 * Without rules every authenticated client may copy wherever the run-as user may write
 * (setuid and setgid bits are dropped; an owner may be asked for, which only a root
 * run-as user can give). With rules, the first rule for the client that has `copy`
 * paths decides: those paths, its run-as user, its `setuid` and `owner`.
 */
export function authorizeCopy(rules: readonly PolicyRule[] | undefined, client: string): TransferDecision {
  return authorizeTransfer(rules, client, 'copy');
}

/**
 * The same for reading: without rules every authenticated client may fetch whatever the
 * run-as user may read; with rules, the first rule for the client that has `fetch` paths
 * decides: those paths and its run-as user.
 */
export function authorizeFetch(rules: readonly PolicyRule[] | undefined, client: string): TransferDecision {
  return authorizeTransfer(rules, client, 'fetch');
}

function authorizeTransfer(rules: readonly PolicyRule[] | undefined, client: string, key: 'copy' | 'fetch'): TransferDecision {
  if (!rules) return { allowed: true, paths: undefined, runAs: undefined, setuid: false, owner: key === 'copy' };
  const mine = rules.filter((rule) => anyMatch(rule.clients, client));
  if (mine.length === 0) return { allowed: false, reason: `no policy rule for client ${client}` };
  const rule = mine.find((r) => (r[key] ?? []).length > 0);
  if (!rule) return { allowed: false, reason: `${key === 'copy' ? 'copying' : 'fetching'} files is not allowed for this client` };
  return {
    allowed: true,
    paths: rule[key],
    runAs: rule.runAs,
    setuid: key === 'copy' && rule.setuid === true,
    owner: key === 'copy' && rule.owner === true,
  };
}
