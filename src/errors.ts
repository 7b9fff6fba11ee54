// Every failure DistRunner reports has a stable code. The codes that travel on the
// wire (agent → client in a FAI message) are listed in protocol/constants.ts and
// are a subset of these; the CLI maps every code to a message and an exit code
// in one place (cli/exit-codes.ts, and per host cli/execution/outcome.ts).

export const ErrorCodes = {
  /** Bad command-line usage. */
  USAGE: 'E_USAGE',
  /** The inventory file is missing, unreadable or malformed, or a selection is invalid. */
  INVENTORY: 'E_INVENTORY',
  /** The PKI directory or a certificate/key in it is missing or unusable. */
  PKI: 'E_PKI',
  /** The agent configuration is invalid. */
  CONFIG: 'E_CONFIG',
  /**
   * A local file or directory is unsafe to use (someone else owns it or may write it, or
   * it is a link where a file must be) or cannot be read or written.
   */
  FILE: 'E_FILE',
  /** No broker could be reached or used (`--broker`), or the link to it was lost. */
  BROKER: 'E_BROKER',
  /** Through a broker: no agent of that name is connected to it (NATS "no responders"). */
  OFFLINE: 'E_OFFLINE',
  /** TCP connection failed (refused, unreachable, DNS, TCP connect timeout). */
  CONNECT: 'E_CONNECT',
  /**
   * TCP connected but the TLS handshake, or the agent's first reply, did not come within
   * the connect timeout: something listens there that is not answering as an agent.
   */
  HANDSHAKE_TIMEOUT: 'E_HANDSHAKE_TIMEOUT',
  /** TLS handshake failed or the peer's certificate was not acceptable. */
  TLS: 'E_TLS',
  /** The AUTH token was missing or wrong. */
  AUTH: 'E_AUTH',
  /** The peer broke the protocol (bad frame, message out of order, unknown token). */
  PROTOCOL: 'E_PROTOCOL',
  /** A frame announced a payload larger than the receiver accepts. */
  FRAME_TOO_LARGE: 'E_FRAME_TOO_LARGE',
  /** Client and agent share no protocol version. */
  VERSION: 'E_VERSION',
  /** The agent could not start the command (not found, not executable, ...). */
  SPAWN: 'E_SPAWN',
  /** The agent is at its session limit, or shutting down. */
  BUSY: 'E_BUSY',
  /** The client is not allowed to connect, or its policy does not allow the command. */
  DENIED: 'E_DENIED',
  /** A limit of the agent was reached (argv size, setup time, idle time). */
  LIMIT: 'E_LIMIT',
  /** The agent cannot write its audit log, so it runs nothing. */
  AUDIT: 'E_AUDIT',
  /** The connection ended before the command's exit status arrived. */
  DISCONNECTED: 'E_DISCONNECTED',
  /** The command outlived its time limit and the agent did not report stopping it. */
  TIMEOUT: 'E_TIMEOUT',
  /** The run was interrupted while this host's command ran. */
  INTERRUPTED: 'E_INTERRUPTED',
  /** This host was never started (interrupt, --max-fail). */
  SKIPPED: 'E_SKIPPED',
  /** The agent hit an internal error while serving the session. */
  INTERNAL: 'E_INTERNAL',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

/** Base class: a failure with a stable code and a message fit for a person. */
export class DistRunError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

export class UsageError extends DistRunError {
  constructor(message: string) {
    super(ErrorCodes.USAGE, message);
  }
}

/** A bad option value or combination (or a missing command): reported with a pointer to --help. */
export class OptionError extends UsageError {}

/**
 * One -g expression selects no host. selectTargets reports it only when the selection as a
 * whole is empty (`-g web -g canary` with an empty canary is web's hosts).
 */
export class EmptySelectionError extends UsageError {}

/** An inventory problem; the message always names the file and, when known, the entry. */
export class InventoryError extends DistRunError {
  readonly file: string | undefined;
  readonly entry: string | undefined;

  constructor(message: string, where: { file?: string; entry?: string } = {}) {
    const prefix = [where.file, where.entry].filter(Boolean).join(': ');
    super(ErrorCodes.INVENTORY, prefix ? `${prefix}: ${message}` : message);
    this.file = where.file;
    this.entry = where.entry;
  }
}

export class PkiError extends DistRunError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCodes.PKI, message, options);
  }
}

export class ConfigError extends DistRunError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCodes.CONFIG, message, options);
  }
}

export class FileError extends DistRunError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCodes.FILE, message, options);
  }
}

/** A violation of the wire protocol by the peer. Ends only the session it happened in. */
export class ProtocolError extends DistRunError {
  constructor(message: string, code: ErrorCode = ErrorCodes.PROTOCOL) {
    super(code, message);
  }
}

/** A failure reported by the remote agent in a FAI message, or met while talking to it. */
export class RemoteError extends DistRunError {}

export function isDistRunError(err: unknown): err is DistRunError {
  return err instanceof DistRunError;
}

/** Best-effort message of an unknown thrown value, for logs and last-resort reporting. */
export function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
