import { ErrorCodes, type ErrorCode } from '../errors.js';

// Every value that appears on the wire lives here. docs/protocol.md describes the same
// table for people; keep the two in step.

/** Frame header: a 3-byte ASCII token followed by a 4-byte unsigned big-endian payload length. */
export const TOKEN_BYTES = 3;
export const LENGTH_BYTES = 4;
export const HEADER_BYTES = TOKEN_BYTES + LENGTH_BYTES;

/** Largest payload a receiver accepts unless configured otherwise. */
export const DEFAULT_MAX_PAYLOAD = 1024 * 1024;

/**
 * Protocol versions this code speaks; the client offers them, the agent picks the highest
 * in common. Version 2 added keepalives (KAL, and `keepalive` in the agent's VER);
 * version 3 terminal sessions (the `pty` and `term` options, WIN); version 4 HLD;
 * version 5 file transfer (PUT, GET and the file stream).
 */
export const PROTOCOL_VERSION = 5;
export const SUPPORTED_VERSIONS: readonly number[] = [1, 2, 3, 4, PROTOCOL_VERSION];
/** The first version with keepalives. */
export const KEEPALIVE_VERSION = 2;
/** The first version with terminal sessions (`pty` and `term` options, WIN). */
export const PTY_VERSION = 3;
/** The first version with HLD (the command exited, its output is held open). */
export const HELD_VERSION = 4;
/** The first version with file transfer (PUT and GET, and the file stream inside INP and OUT). */
export const FILE_VERSION = 5;
/** A peer silent for this many keepalive intervals is gone (ssh's ServerAliveCountMax). */
export const KEEPALIVE_MISSES = 3;
export const MAX_KEEPALIVE_SECONDS = 3600;

export const DEFAULT_AGENT_PORT = 6789;

/** Message tokens sent by the client. */
export const ClientToken = {
  /** Protocol versions the client speaks (JSON). Always the first frame. */
  VERSION: 'VER',
  /** One session option, `name` or `name=value` (UTF-8). Any number, before CMD. */
  OPTION: 'OPT',
  /** The shared token, raw bytes, when the agent requires one. Before CMD. */
  AUTH: 'AUT',
  /** The argv to run, as length-prefixed UTF-8 strings. Exactly once. */
  COMMAND: 'CMD',
  /** Bytes for the command's stdin (only with the `stdin` option). */
  INPUT: 'INP',
  /** End of input: the agent closes the command's stdin; output keeps flowing. */
  END_OF_INPUT: 'EOF',
  /** Forward a signal (name such as `INT`) to the command's process group. */
  SIGNAL: 'SIG',
  /** Instead of CMD: check the session could run a command (`distrun ping`); empty. */
  PING: 'PNG',
  /** Version 2: the client is alive; sent every keepalive interval while the command runs. Empty. */
  KEEPALIVE: 'KAL',
  /** Version 3: the terminal's new size, `COLSxROWS` (only with the `pty` option). */
  WINDOW: 'WIN',
  /**
   * Version 5, instead of CMD: receive files into a path (JSON). The agent runs its file
   * receiver as the run-as user; INP then carries the file stream, OUT its answers.
   */
  PUT: 'PUT',
  /**
   * Version 5, instead of CMD: send files from the host (JSON). The agent runs its file
   * sender as the run-as user; OUT then carries the file stream (ENT, DAT, END, FIL).
   */
  GET: 'GET',
} as const;

/** Message tokens sent by the agent. */
export const AgentToken = {
  /** The version the agent chose, and its software version (JSON). First frame. */
  VERSION: 'VER',
  /** Bytes the command wrote to stdout. */
  STDOUT: 'OUT',
  /** Bytes the command wrote to stderr (only with the `stderr` option). */
  STDERR: 'ERR',
  /** How the command ended (JSON); sent after all output, then the agent closes. */
  EXIT: 'EXT',
  /** The session failed (JSON: code and reason); the agent closes after it. */
  FAILURE: 'FAI',
  /** Answer to PNG (JSON: the agent's time); the agent closes after it. */
  PONG: 'PON',
  /** Version 2: the agent is alive; sent every keepalive interval while the command runs. Empty. */
  KEEPALIVE: 'KAL',
  /**
   * Version 4: the command's own process has exited (JSON: its code or signal) while its
   * output is still held open by processes it left behind; EXT follows when that closes.
   */
  HELD: 'HLD',
} as const;

/**
 * The file stream (version 5), framed like the session itself. A copy: the client's
 * entries and data travel inside INP, the receiver's answers inside OUT. A fetch: the
 * sender's entries, data, ends and failures travel inside OUT.
 */
export const FileToken = {
  /** Client (copy), sender (fetch): one entry (JSON): a file, a directory or a symbolic link, numbered from 0. */
  ENTRY: 'ENT',
  /** Client: bytes of the file entry the receiver asked for; sender: bytes of the file entry just announced. */
  DATA: 'DAT',
  /**
   * The end of that entry's data (JSON: its number; from a copy's client also the sha256 of
   * what it sent when ENT did not carry one; from a sender the size and sha256 of what it sent).
   */
  END: 'END',
  /** Receiver: send the data of this file entry (JSON: its number). */
  WANT: 'WNT',
  /**
   * Receiver, for a file announced without its sha256: a regular file of that size is
   * there, with this sha256 (JSON: number and sha256). The client answers SAM when its own
   * file has the same sha256, else sends the data as after WNT.
   */
  HAVE: 'HAV',
  /** Client: the file the receiver has (HAV) is the same as this entry's (JSON: its number): nothing is sent. */
  SAME: 'SAM',
  /** Receiver: what became of one entry (JSON); sender: an entry it cannot send (JSON, outcome failed). */
  RESULT: 'FIL',
  /**
   * Receiver: the temporary file it is about to create for an entry (JSON: number and
   * path), so that the agent can remove it if the receiver is killed before it renames it.
   */
  TEMP: 'TMP',
} as const;

/** Tokens whose payload is a byte stream: frame boundaries mean nothing, so receivers take them piece by piece. */
export const STREAM_TOKENS: ReadonlySet<string> = new Set([ClientToken.INPUT, AgentToken.STDOUT, AgentToken.STDERR]);
/** The same inside a file stream. */
export const FILE_STREAM_TOKENS: ReadonlySet<string> = new Set([FileToken.DATA]);

export const CLIENT_TOKENS: ReadonlySet<string> = new Set(Object.values(ClientToken));
export const AGENT_TOKENS: ReadonlySet<string> = new Set(Object.values(AgentToken));

/** Session options (OPT payload names). */
export const SessionOption = {
  /** Connect the command's stdin to INP/EOF messages; without it stdin is /dev/null. */
  STDIN: 'stdin',
  /** Send the command's stderr as ERR messages; without it stderr is discarded. */
  STDERR: 'stderr',
  /** Run argv[0] as a `/bin/sh -c` script, the remaining arguments as $0, $1, ... */
  SHELL: 'shell',
  /** Kill the command's process group after this many milliseconds (`timeout=MS`). */
  TIMEOUT: 'timeout',
  /** Working directory of the command (`cwd=/absolute/path`). */
  CWD: 'cwd',
  /** One environment variable for the command (`env=NAME=value`); repeatable. */
  ENV: 'env',
  /** Version 3: run the command in a pseudo-terminal of this size (`pty=COLSxROWS`); stderr joins stdout. */
  PTY: 'pty',
  /** Version 3: the terminal type for TERM (`term=xterm-256color`); only with `pty`. */
  TERM: 'term',
} as const;

/** Largest terminal side accepted, in columns or rows. */
export const MAX_TERMINAL_SIDE = 10_000;
export const TERM_PATTERN = /^[A-Za-z0-9._+-]{1,64}$/;

/** At most this many `env` options per session. */
export const MAX_ENV_VARIABLES = 64;
export const ENV_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Signals a client may forward. Anything else is a protocol error. */
export const FORWARDABLE_SIGNALS: ReadonlySet<string> = new Set([
  'HUP',
  'INT',
  'QUIT',
  'TERM',
  'KILL',
  'USR1',
  'USR2',
  'CONT',
  'STOP',
  'TSTP',
  'WINCH',
]);

/**
 * Failure codes an agent may send in FAI messages: the wire subset of ErrorCodes
 * (src/errors.ts). A client reports any other code as E_PROTOCOL, with the reason given.
 */
export const WIRE_ERROR_CODES: ReadonlySet<ErrorCode> = new Set([
  ErrorCodes.AUTH,
  ErrorCodes.PROTOCOL,
  ErrorCodes.FRAME_TOO_LARGE,
  ErrorCodes.VERSION,
  ErrorCodes.SPAWN,
  ErrorCodes.BUSY,
  ErrorCodes.DENIED,
  ErrorCodes.LIMIT,
  ErrorCodes.AUDIT,
  ErrorCodes.INTERNAL,
]);
