// Encoding and decoding of every message payload, and of whole frames. Pure: no I/O.
import { ErrorCodes, ProtocolError, type ErrorCode } from '../errors.js';
import { strictUtf8 } from '../strict-utf8.js';
import {
  AgentToken,
  ClientToken,
  ENV_NAME_PATTERN,
  FORWARDABLE_SIGNALS,
  HEADER_BYTES,
  KEEPALIVE_VERSION,
  LENGTH_BYTES,
  MAX_ENV_VARIABLES,
  MAX_KEEPALIVE_SECONDS,
  MAX_TERMINAL_SIDE,
  SessionOption,
  TERM_PATTERN,
  TOKEN_BYTES,
  WIRE_ERROR_CODES,
} from './constants.js';

const MAX_UINT32 = 0xffffffff;

/** One frame as bytes: token, big-endian length, payload. */
export function encodeFrame(token: string, payload: Buffer | string = Buffer.alloc(0)): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  const frame = Buffer.allocUnsafe(HEADER_BYTES + body.length);
  writeFrameHeader(frame, token, body.length);
  body.copy(frame, HEADER_BYTES);
  return frame;
}

/**
 * Only the header of a frame whose `length` payload bytes the caller sends right after
 * it: large stream payloads then go out as they are, without a copy.
 */
export function encodeFrameHeader(token: string, length: number): Buffer {
  return writeFrameHeader(Buffer.allocUnsafe(HEADER_BYTES), token, length);
}

function writeFrameHeader(target: Buffer, token: string, length: number): Buffer {
  if (token.length !== TOKEN_BYTES) throw new Error(`token must be ${TOKEN_BYTES} characters: ${token}`);
  if (length > MAX_UINT32) throw new Error('payload too large for one frame');
  target.write(token, 0, TOKEN_BYTES, 'latin1');
  target.writeUInt32BE(length, TOKEN_BYTES);
  return target;
}

// ---- VER ------------------------------------------------------------------

interface VersionOffer {
  versions: number[];
  software: string;
}

interface VersionChoice {
  version: number;
  software: string;
  /** Version 2: seconds between keepalives while a command runs; 0 = none. */
  keepaliveSeconds: number;
}

export function encodeVersionOffer(offer: VersionOffer): Buffer {
  return encodeFrame(ClientToken.VERSION, JSON.stringify(offer));
}

export function decodeVersionOffer(payload: Buffer): VersionOffer {
  const value = parseJsonObject(payload, 'VER');
  const { versions, software } = value;
  if (!Array.isArray(versions) || versions.length === 0 || !versions.every(isSmallInt)) {
    throw new ProtocolError('VER must list protocol versions as integers');
  }
  return { versions, software: typeof software === 'string' ? software.slice(0, 100) : 'unknown' };
}

export function encodeVersionChoice(choice: VersionChoice): Buffer {
  const { version, software, keepaliveSeconds } = choice;
  return encodeFrame(
    AgentToken.VERSION,
    JSON.stringify(version >= KEEPALIVE_VERSION ? { version, software, keepalive: keepaliveSeconds } : { version, software }),
  );
}

export function decodeVersionChoice(payload: Buffer): VersionChoice {
  const value = parseJsonObject(payload, 'VER');
  if (!isSmallInt(value.version)) throw new ProtocolError('VER must name the chosen version');
  const { keepalive } = value;
  if (value.version >= KEEPALIVE_VERSION && !(isSmallInt(keepalive) && keepalive <= MAX_KEEPALIVE_SECONDS)) {
    throw new ProtocolError(`VER must give the keepalive interval (0 to ${MAX_KEEPALIVE_SECONDS} s)`);
  }
  return {
    version: value.version,
    software: typeof value.software === 'string' ? value.software.slice(0, 100) : 'unknown',
    keepaliveSeconds: value.version >= KEEPALIVE_VERSION ? (keepalive as number) : 0,
  };
}

// ---- OPT ------------------------------------------------------------------

export interface SessionOptions {
  stdin: boolean;
  stderr: boolean;
  shell: boolean;
  /** Command time limit in milliseconds; 0 = none. */
  timeoutMs: number;
  /** Working directory; undefined = the run-as user's home. */
  cwd?: string;
  /** Extra environment variables for the command. */
  env: Record<string, string>;
  /** Run in a pseudo-terminal of this size (version 3). */
  pty?: WindowSize;
  /** TERM for the pseudo-terminal. */
  term?: string;
}

export interface WindowSize {
  cols: number;
  rows: number;
}

const DEFAULT_SESSION_OPTIONS: Readonly<SessionOptions> = {
  stdin: false,
  stderr: false,
  shell: false,
  timeoutMs: 0,
  env: {},
};

/** A fresh copy of the defaults (the env map is per session). */
export function defaultSessionOptions(): SessionOptions {
  return { ...DEFAULT_SESSION_OPTIONS, env: {} };
}

/** The OPT frames that request `options` (defaults are not sent). */
export function encodeOptions(options: SessionOptions): Buffer[] {
  const frames: Buffer[] = [];
  if (options.stdin) frames.push(encodeFrame(ClientToken.OPTION, SessionOption.STDIN));
  if (options.stderr) frames.push(encodeFrame(ClientToken.OPTION, SessionOption.STDERR));
  if (options.shell) frames.push(encodeFrame(ClientToken.OPTION, SessionOption.SHELL));
  if (options.timeoutMs > 0) {
    frames.push(encodeFrame(ClientToken.OPTION, `${SessionOption.TIMEOUT}=${Math.ceil(options.timeoutMs)}`));
  }
  if (options.cwd !== undefined) frames.push(encodeFrame(ClientToken.OPTION, `${SessionOption.CWD}=${options.cwd}`));
  for (const [name, value] of Object.entries(options.env)) {
    frames.push(encodeFrame(ClientToken.OPTION, `${SessionOption.ENV}=${name}=${value}`));
  }
  if (options.pty) frames.push(encodeFrame(ClientToken.OPTION, `${SessionOption.PTY}=${formatWindow(options.pty)}`));
  if (options.term !== undefined) frames.push(encodeFrame(ClientToken.OPTION, `${SessionOption.TERM}=${options.term}`));
  return frames;
}

// ---- WIN and the pty option: COLSxROWS ------------------------------------

function formatWindow({ cols, rows }: WindowSize): string {
  return `${cols}x${rows}`;
}

function parseWindow(text: string, what: string): WindowSize {
  const match = /^(\d{1,5})x(\d{1,5})$/.exec(text);
  const [cols, rows] = match ? [Number(match[1]), Number(match[2])] : [0, 0];
  if (cols < 1 || rows < 1 || cols > MAX_TERMINAL_SIDE || rows > MAX_TERMINAL_SIDE) {
    throw new ProtocolError(`${what} needs COLSxROWS, each from 1 to ${MAX_TERMINAL_SIDE}`);
  }
  return { cols, rows };
}

export function encodeWindow(size: WindowSize): Buffer {
  return encodeFrame(ClientToken.WINDOW, formatWindow(size));
}

export function decodeWindow(payload: Buffer): WindowSize {
  return parseWindow(payload.toString('latin1'), 'WIN');
}

/** Applies one OPT payload to `options`; an unknown or malformed option is a protocol error. */
export function applyOption(options: SessionOptions, payload: Buffer): void {
  const text = payload.toString('utf8');
  const eq = text.indexOf('=');
  const name = eq < 0 ? text : text.slice(0, eq);
  const value = eq < 0 ? undefined : text.slice(eq + 1);
  const flag = (key: 'stdin' | 'stderr' | 'shell'): void => {
    if (value !== undefined) throw new ProtocolError(`option ${name} takes no value`);
    options[key] = true;
  };
  switch (name) {
    case SessionOption.STDIN:
      return flag('stdin');
    case SessionOption.STDERR:
      return flag('stderr');
    case SessionOption.SHELL:
      return flag('shell');
    case SessionOption.TIMEOUT: {
      if (value === undefined || !/^\d{1,10}$/.test(value)) {
        throw new ProtocolError('option timeout needs a whole number of milliseconds');
      }
      options.timeoutMs = Number(value);
      return;
    }
    case SessionOption.CWD: {
      if (value === undefined || !value.startsWith('/') || value.includes('\0')) {
        throw new ProtocolError('option cwd needs an absolute path');
      }
      options.cwd = value;
      return;
    }
    case SessionOption.ENV: {
      const split = value?.indexOf('=') ?? -1;
      const variable = split > 0 ? value!.slice(0, split) : '';
      if (!ENV_NAME_PATTERN.test(variable) || value!.includes('\0')) {
        throw new ProtocolError('option env needs NAME=value with a valid variable name');
      }
      if (!(variable in options.env) && Object.keys(options.env).length >= MAX_ENV_VARIABLES) {
        throw new ProtocolError(`at most ${MAX_ENV_VARIABLES} env options`);
      }
      options.env[variable] = value!.slice(split + 1);
      return;
    }
    case SessionOption.PTY:
      options.pty = parseWindow(value ?? '', 'option pty');
      return;
    case SessionOption.TERM:
      if (value === undefined || !TERM_PATTERN.test(value)) throw new ProtocolError('option term needs a terminal type name');
      options.term = value;
      return;
    default:
      throw new ProtocolError(`unknown option ${JSON.stringify(name.slice(0, 40))}`);
  }
}

// ---- CMD ------------------------------------------------------------------
// The argv travels as a sequence of (4-byte length, UTF-8 bytes) pairs so that every
// argument, including empty ones and ones with spaces or newlines, arrives exactly.

export function encodeCommand(argv: readonly string[]): Buffer {
  if (argv.length === 0) throw new Error('argv must not be empty');
  const parts = argv.map((arg) => Buffer.from(arg, 'utf8'));
  const payload = Buffer.allocUnsafe(parts.reduce((n, p) => n + LENGTH_BYTES + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    offset = payload.writeUInt32BE(part.length, offset);
    offset += part.copy(payload, offset);
  }
  return encodeFrame(ClientToken.COMMAND, payload);
}

export function decodeCommand(payload: Buffer): string[] {
  const argv: string[] = [];
  let offset = 0;
  while (offset < payload.length) {
    if (payload.length - offset < LENGTH_BYTES) throw new ProtocolError('CMD argument length is truncated');
    const length = payload.readUInt32BE(offset);
    offset += LENGTH_BYTES;
    if (length > payload.length - offset) throw new ProtocolError('CMD argument overruns the frame');
    const bytes = payload.subarray(offset, offset + length);
    offset += length;
    const arg = strictUtf8(bytes);
    if (arg === undefined) throw new ProtocolError('CMD arguments must be valid UTF-8');
    if (arg.includes('\0')) throw new ProtocolError('CMD arguments must not contain NUL bytes');
    argv.push(arg);
  }
  if (argv.length === 0 || argv[0] === '') throw new ProtocolError('CMD needs a program name');
  return argv;
}

// ---- SIG ------------------------------------------------------------------

export function encodeSignal(name: string): Buffer {
  return encodeFrame(ClientToken.SIGNAL, name.replace(/^SIG/, ''));
}

/** Returns the Node signal name (`SIGINT`) of a SIG payload. */
export function decodeSignal(payload: Buffer): NodeJS.Signals {
  const name = payload.toString('latin1');
  if (!FORWARDABLE_SIGNALS.has(name)) throw new ProtocolError(`signal ${JSON.stringify(name.slice(0, 20))} cannot be forwarded`);
  return `SIG${name}` as NodeJS.Signals;
}

// ---- EXT ------------------------------------------------------------------

/** How the command ended: an exit code, or the signal that killed it. */
export type ExitStatus = { code: number; signal?: undefined; timedOut: boolean } | { code?: undefined; signal: string; timedOut: boolean };

export function encodeExit(status: ExitStatus): Buffer {
  return encodeFrame(AgentToken.EXIT, JSON.stringify(status));
}

export function decodeExit(payload: Buffer): ExitStatus {
  const value = parseJsonObject(payload, 'EXT');
  const timedOut = value.timedOut === true;
  if (isSmallInt(value.code)) return { code: value.code, timedOut };
  if (typeof value.signal === 'string' && /^SIG[A-Z0-9]+$/.test(value.signal)) {
    return { signal: value.signal, timedOut };
  }
  throw new ProtocolError('EXT must carry an exit code or a signal name');
}

// ---- HLD ------------------------------------------------------------------

/** How the command's own process (the group's leader) exited: its code, or the signal. */
export type LeaderExit = { code: number; signal?: undefined } | { code?: undefined; signal: string };

export function encodeHeld(leader: LeaderExit): Buffer {
  return encodeFrame(AgentToken.HELD, JSON.stringify(leader));
}

export function decodeHeld(payload: Buffer): LeaderExit {
  const value = parseJsonObject(payload, 'HLD');
  if (isSmallInt(value.code)) return { code: value.code };
  if (typeof value.signal === 'string' && /^SIG[A-Z0-9]+$/.test(value.signal)) return { signal: value.signal };
  throw new ProtocolError('HLD must carry an exit code or a signal name');
}

// ---- FAI ------------------------------------------------------------------

export interface Failure {
  code: ErrorCode;
  reason: string;
  /** For E_SPAWN: the exit code a shell would report (127 not found, 126 not executable). */
  exitCode?: number;
}

export function encodeFailure(failure: Failure): Buffer {
  return encodeFrame(AgentToken.FAILURE, JSON.stringify(failure));
}

export function decodeFailure(payload: Buffer): Failure {
  const value = parseJsonObject(payload, 'FAI');
  const code = WIRE_ERROR_CODES.has(value.code as ErrorCode) ? (value.code as ErrorCode) : ErrorCodes.PROTOCOL;
  const reason = typeof value.reason === 'string' ? value.reason.slice(0, 1000) : 'no reason given';
  const failure: Failure = { code, reason };
  if (isSmallInt(value.exitCode)) failure.exitCode = value.exitCode;
  return failure;
}

// ---- helpers --------------------------------------------------------------

export function parseJsonObject(payload: Buffer, token: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(payload.toString('utf8'));
  } catch {
    throw new ProtocolError(`${token} payload is not valid JSON`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ProtocolError(`${token} payload must be a JSON object`);
  }
  return value as Record<string, unknown>;
}

export function isSmallInt(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 0xffff;
}

// ---- PNG / PON ---------------------------------------------------------------

interface Pong {
  /** The agent's clock, ms since the epoch. */
  time: number;
}

export function encodePong(pong: Pong): Buffer {
  return encodeFrame(AgentToken.PONG, JSON.stringify(pong));
}

export function decodePong(payload: Buffer): Pong {
  const value = parseJsonObject(payload, 'PON');
  if (typeof value.time !== 'number') throw new ProtocolError('PON must carry the agent time');
  return { time: value.time };
}
