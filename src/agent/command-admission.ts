// Whether a session's command may run, and how: every rule between the client's CMD and
// the spawn, in the order the agent applies them (the order decides which reason a client
// hears): argv size (on the CMD header, before its payload is held), then authentication,
// version rules, refused variables, policy, run-as user, the program to execute, working
// directory, time limit. Pure: the request, the client and the runtime in; the command
// to start and what the audit records of it, or a Failure. The session does what has
// effects (audit records, logging, the spawn).
import { fileURLToPath } from 'node:url';
import { ErrorCodes } from '../errors.js';
import { ClientToken, FILE_VERSION } from '../protocol/constants.js';
import { decodeCopyRequest, decodeFetchRequest, type CopyRequest, type FetchRequest } from '../protocol/file-messages.js';
import { decodeCommand, type Failure, type SessionOptions } from '../protocol/messages.js';
import { optionsProblem } from '../protocol/version-rules.js';
import type { AuditRecord } from './audit.js';
import { refusedVariable } from './command-environment.js';
import type { CommandHelpers, CommandSpec } from './command-process.js';
import type { LocalUser } from './local-users.js';
import type { ReceiverJob } from './file-receiver.js';
import type { SenderJob } from './file-sender.js';
import { authorize, authorizeCopy, authorizeFetch } from './policy.js';
import type { AgentRuntime } from './runtime.js';

/** What a client asks to run: its CMD payload and the options its OPT frames set. */
export interface CommandAsked {
  /** The CMD payload; decoded only once the client is known to be authenticated. */
  command: Buffer;
  options: SessionOptions;
  /** The protocol version the session speaks. */
  version: number;
  /** Whether the client has passed the token check (or the agent needs no token). */
  authenticated: boolean;
}

/** The parts of the runtime the rules read. */
export type AdmissionRuntime = Pick<AgentRuntime, 'config' | 'agentUser' | 'users'>;

/** What the audit records say about the command (denied ones have no run-as user); a copy has `copy`, a fetch `fetch` instead of a command's argv. */
export type CommandAuditFields = Required<Pick<AuditRecord, 'argv' | 'shell' | 'envNames' | 'pty'>> &
  Pick<AuditRecord, 'cwd' | 'runAs' | 'copy' | 'fetch'>;

/** What to start: a CommandSpec without the agent-wide helpers (pipes, reaper, cgroups). */
export type AdmittedSpec = Omit<CommandSpec, keyof CommandHelpers>;

export type Admission =
  | { admitted: true; spec: AdmittedSpec; audit: CommandAuditFields & { runAs: string } }
  /** `denied` is set when the client's request is refused as such: it gets a `denied` audit record. */
  | { admitted: false; failure: Failure; denied?: CommandAuditFields };

const refuse = (failure: Failure, denied?: CommandAuditFields): Admission => ({ admitted: false, failure, denied });

/**
 * The argv size limit, checked on the CMD frame's header before its payload is held (the
 * session calls this from its frame admission); undefined when the length is within it.
 */
export function commandLengthFailure(length: number, maxArgvBytes: number): Failure | undefined {
  if (length <= maxArgvBytes) return undefined;
  return { code: ErrorCodes.LIMIT, reason: `command of ${length} bytes exceeds the agent's limit of ${maxArgvBytes}` };
}

/**
 * Decides on one command. A CMD payload that does not decode throws ProtocolError, like
 * any other malformed frame; every refusal is returned.
 */
export function admitCommand(asked: CommandAsked, client: { name: string }, runtime: AdmissionRuntime): Admission {
  if (!asked.authenticated) return refuse({ code: ErrorCodes.AUTH, reason: 'this agent requires an authentication token' });
  const { config } = runtime;
  const argv = decodeCommand(asked.command);
  const { stdin, stderr, shell, cwd, env, pty, term } = asked.options;
  const problem = optionsProblem(asked.options, asked.version);
  if (problem !== undefined) return refuse({ code: ErrorCodes.PROTOCOL, reason: problem });
  const envNames = Object.keys(env);
  const request = { argv, shell, cwd, envNames, pty: pty !== undefined };
  // Whatever the policy: no client sets what changes how programs load or run.
  const refused = envNames.find((name) => refusedVariable(name) !== undefined);
  const decision =
    refused !== undefined
      ? { allowed: false as const, reason: `--env ${refused} is refused: ${refusedVariable(refused)!}` }
      : authorize(config.policy, client.name, argv, request);
  if (!decision.allowed) return refuse({ code: ErrorCodes.DENIED, reason: decision.reason }, request);
  const user = runAsUser(runtime, decision.runAs);
  // A shell script is not a program to normalize; a program runs as the path policy matched.
  const program = shell ? argv[0]! : decision.program;
  const timeoutMs = cappedTimeout(asked.options.timeoutMs, runtime);
  return {
    admitted: true,
    spec: {
      argv: [program, ...argv.slice(1)],
      shell,
      stdin,
      stderr,
      timeoutMs,
      killGraceMs: config.killGraceSeconds * 1000,
      user,
      switchUser: user.uid !== runtime.agentUser.uid,
      clientName: client.name,
      cwd,
      env,
      pty: pty && { ...pty, term: term ?? 'xterm' },
    },
    audit: { ...request, runAs: user.name },
  };
}

// The agent's cap on run time applies even when the client asked for none.
function cappedTimeout(asked: number, runtime: AdmissionRuntime): number {
  const limits = [asked, runtime.config.maxCommandSeconds * 1000].filter((ms) => ms > 0);
  return limits.length > 0 ? Math.min(...limits) : 0;
}

/** The agent's file receiver (copy) and sender (fetch), run by the agent's own node. */
const RECEIVER = fileURLToPath(new URL('./file-receiver-main.js', import.meta.url));
const SENDER = fileURLToPath(new URL('./file-sender-main.js', import.meta.url));

/** What a client asks to copy or fetch: its PUT or GET payload and the options its OPT frames set. */
type TransferAsked = Omit<CommandAsked, 'command'> & { request: Buffer };

/**
 * Decides on a copy (PUT, protocol 5): the same gate as a command (token, policy, run-as
 * user, time limit), then the agent's file receiver is the program, run as that user with
 * the paths the policy allows. Its argv is the receiver's job; the audit records the copy.
 */
export function admitCopy(asked: TransferAsked, client: { name: string }, runtime: AdmissionRuntime): Admission {
  const refused = transferRefused(asked, ClientToken.PUT);
  if (refused) return refused;
  const request: CopyRequest = decodeCopyRequest(asked.request);
  const copy = { dest: request.dest, sources: request.sources, preserve: request.preserve, backup: request.backup };
  const audit = { argv: [], shell: false, envNames: [], pty: false, copy };
  const decision = authorizeCopy(runtime.config.policy, client.name);
  if (!decision.allowed) return refuse({ code: ErrorCodes.DENIED, reason: decision.reason }, audit);
  if (request.owner !== undefined && !decision.owner)
    return refuse({ code: ErrorCodes.DENIED, reason: '--owner is not allowed for this client' }, audit);
  const job: ReceiverJob = {
    request,
    setuid: decision.setuid,
    ...(decision.paths ? { allowed: decision.paths } : {}),
    ...(request.owner !== undefined ? { owner: request.owner } : {}),
  };
  return transferProgram(RECEIVER, job, asked, client, runtime, decision.runAs, audit);
}

/**
 * Decides on a fetch (GET, protocol 5) the same way: the agent's file sender is the
 * program, run as the run-as user with the paths the policy allows it to read.
 */
export function admitFetch(asked: TransferAsked, client: { name: string }, runtime: AdmissionRuntime): Admission {
  const refused = transferRefused(asked, ClientToken.GET);
  if (refused) return refused;
  const request: FetchRequest = decodeFetchRequest(asked.request);
  const audit = { argv: [], shell: false, envNames: [], pty: false, fetch: request };
  const decision = authorizeFetch(runtime.config.policy, client.name);
  if (!decision.allowed) return refuse({ code: ErrorCodes.DENIED, reason: decision.reason }, audit);
  const job: SenderJob = { request, ...(decision.paths ? { allowed: decision.paths } : {}) };
  return transferProgram(SENDER, job, asked, client, runtime, decision.runAs, audit);
}

/** What refuses a PUT or GET before its payload is read: no token, an old protocol, options it does not take. */
function transferRefused(asked: TransferAsked, token: typeof ClientToken.PUT | typeof ClientToken.GET): Admission | undefined {
  if (!asked.authenticated) return refuse({ code: ErrorCodes.AUTH, reason: 'this agent requires an authentication token' });
  if (asked.version < FILE_VERSION) return refuse({ code: ErrorCodes.PROTOCOL, reason: `${token} needs protocol version ${FILE_VERSION}` });
  const { options } = asked;
  // A copy's file stream travels as input; a fetch's only as output.
  if (token === ClientToken.PUT && !options.stdin)
    return refuse({ code: ErrorCodes.PROTOCOL, reason: 'PUT needs the stdin option (the file stream travels there)' });
  if (token === ClientToken.GET && options.stdin) return refuse({ code: ErrorCodes.PROTOCOL, reason: 'GET takes no stdin option' });
  if (options.shell || options.cwd !== undefined || Object.keys(options.env).length > 0 || options.pty) {
    return refuse({ code: ErrorCodes.PROTOCOL, reason: `${token} takes no shell, cwd, env or pty option` });
  }
  return undefined;
}

/** The receiver or sender as the command: the agent's node running PROGRAM with the job as its one argument. */
function transferProgram(
  program: string,
  job: ReceiverJob | SenderJob,
  asked: TransferAsked,
  client: { name: string },
  runtime: AdmissionRuntime,
  ruleUser: string | undefined,
  audit: CommandAuditFields,
): Admission {
  const user = runAsUser(runtime, ruleUser);
  const { options } = asked;
  return {
    admitted: true,
    spec: {
      argv: [process.execPath, program, JSON.stringify(job)],
      shell: false,
      stdin: options.stdin,
      stderr: options.stderr,
      timeoutMs: cappedTimeout(options.timeoutMs, runtime),
      killGraceMs: runtime.config.killGraceSeconds * 1000,
      user,
      switchUser: user.uid !== runtime.agentUser.uid,
      clientName: client.name,
    },
    audit: { ...audit, runAs: user.name },
  };
}

function runAsUser(runtime: AdmissionRuntime, ruleUser: string | undefined): LocalUser {
  // Run-as only means something when the agent can switch users.
  if (runtime.agentUser.uid !== 0) return runtime.agentUser;
  const name = ruleUser ?? runtime.config.runAs;
  return (name && runtime.users.get(name)) || runtime.agentUser;
}
