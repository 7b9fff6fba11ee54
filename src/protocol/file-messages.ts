// Payloads of file transfer (protocol version 5): the PUT and GET requests, and the file
// stream: a copy's inside INP and OUT (ENT, DAT, END, SAM from the client; WNT, HAV, FIL
// and TMP from the receiver), a fetch's inside OUT (ENT, DAT, END and FIL from the sender).
// Pure: no I/O. Every name that will become a path on a host is checked here, on both
// sides, so a receiver never sees a component that could leave its destination.
import { ErrorCodes, ProtocolError, type ErrorCode } from '../errors.js';
import { ClientToken, FILE_STREAM_TOKENS, FileToken } from './constants.js';
import { FrameDecoder } from './frame-decoder.js';
import { encodeFrame, isSmallInt, parseJsonObject } from './messages.js';

/** Longest path, and longest component, in bytes (Linux's PATH_MAX and NAME_MAX). */
const MAX_PATH_BYTES = 4096;
const MAX_NAME_BYTES = 255;
/** Largest file size that JSON's numbers carry exactly (2^53 - 1 bytes). */
const MAX_FILE_SIZE = Number.MAX_SAFE_INTEGER;

/** Largest frame of a file stream other than DAT (ENT carries two paths of up to 4 KiB). */
const MAX_CONTROL_FRAME = 16 * 1024;
/** Largest DAT frame (its bytes pass through in pieces, never held whole). */
const MAX_DATA_FRAME = 16 * 1024 * 1024;

/** A decoder for a file stream as its reader takes it: DAT piece by piece, every other frame small. */
export function fileStreamDecoder(): FrameDecoder {
  return new FrameDecoder({
    maxPayload: MAX_DATA_FRAME,
    streamed: FILE_STREAM_TOKENS,
    checkLength: (token, length) => {
      if (token !== FileToken.DATA && length > MAX_CONTROL_FRAME) {
        throw new ProtocolError(`${token} frame of ${length} bytes exceeds the limit of ${MAX_CONTROL_FRAME} bytes`, ErrorCodes.FRAME_TOO_LARGE);
      }
    },
  });
}

// ---- PUT ------------------------------------------------------------------

/** `--owner`: USER or USER:GROUP, names of up to 32 letters, digits, `_`, `.` and `-`. */
export const OWNER_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,31})?$/;

export interface CopyRequest {
  /** Absolute path on the host: an existing directory, or the new name of the one source. */
  dest: string;
  /** How many top-level entries follow (the sources on the command line). */
  sources: number;
  /** Keep the sources' mode bits and modification times (`-p`); else mode from the source's permission bits, mtime now. */
  preserve: boolean;
  /** `USER[:GROUP]` for the written files, where the policy lets the client choose. */
  owner?: string;
  /** Keep a replaced file as `NAME.~N~` (`--backup`). */
  backup: boolean;
}

export function encodeCopyRequest(request: CopyRequest): Buffer {
  return encodeFrame(ClientToken.PUT, JSON.stringify(request));
}

export function decodeCopyRequest(payload: Buffer): CopyRequest {
  const value = parseJsonObject(payload, 'PUT');
  const dest = checkedPath(value.dest, 'PUT dest');
  if (!dest.startsWith('/')) throw new ProtocolError('PUT dest must be an absolute path');
  if (!(isSmallInt(value.sources) && value.sources >= 1)) throw new ProtocolError('PUT must say how many sources follow (1 or more)');
  if (typeof value.preserve !== 'boolean' || typeof value.backup !== 'boolean')
    throw new ProtocolError('PUT preserve and backup must be true or false');
  const request: CopyRequest = { dest, sources: value.sources, preserve: value.preserve, backup: value.backup };
  if (value.owner !== undefined) {
    if (typeof value.owner !== 'string' || !OWNER_PATTERN.test(value.owner)) {
      throw new ProtocolError('PUT owner must be USER or USER:GROUP (names of up to 32 letters, digits, _ . -)');
    }
    request.owner = value.owner;
  }
  return request;
}

// ---- GET ------------------------------------------------------------------

export interface FetchRequest {
  /** Absolute paths on the host: files, links, or (with recursive) directories. */
  paths: string[];
  /** Send directories and everything below them (`-r`). */
  recursive: boolean;
  /** Stop after this many bytes of file data in all (`--max-bytes`). */
  maxBytes: number;
}

/** At most this many paths in one GET (they must fit its frame). */
const MAX_FETCH_PATHS = 256;

export function encodeFetchRequest(request: FetchRequest): Buffer {
  return encodeFrame(ClientToken.GET, JSON.stringify(request));
}

export function decodeFetchRequest(payload: Buffer): FetchRequest {
  const value = parseJsonObject(payload, 'GET');
  if (!Array.isArray(value.paths) || value.paths.length === 0 || value.paths.length > MAX_FETCH_PATHS) {
    throw new ProtocolError(`GET paths must be a list of 1 to ${MAX_FETCH_PATHS} paths`);
  }
  const paths = value.paths.map((path: unknown) => {
    const checked = checkedPath(path, 'GET path');
    if (!checked.startsWith('/')) throw new ProtocolError('GET paths must be absolute');
    return checked;
  });
  if (typeof value.recursive !== 'boolean') throw new ProtocolError('GET recursive must be true or false');
  if (!(isCount(value.maxBytes) && value.maxBytes >= 1)) throw new ProtocolError('GET maxBytes must be a whole number of bytes (1 or more)');
  return { paths, recursive: value.recursive, maxBytes: value.maxBytes };
}

// ---- ENT ------------------------------------------------------------------

type EntryType = 'file' | 'dir' | 'link';

export interface FileEntry {
  /** The entry's number: 0, 1, 2, ... in the order sent. */
  i: number;
  /** Relative path: components joined by `/`, the first one the source's own name. */
  path: string;
  type: EntryType;
  /** Permission bits (0 to 0o7777). */
  mode: number;
  /** Modification time, ms since the epoch (with preserve). */
  mtimeMs?: number;
  /** A file's size in bytes (from a sender: its size when the entry was announced; END says what was sent). */
  size?: number;
  /**
   * A file's SHA-256, lower-case hex, from a copy's client when it knows it ahead. A client
   * may leave it out and hash while sending (END then carries it): a receiver that has a
   * file of the same size answers HAV with that file's sha256, so that an identical file
   * still costs a hash, not a transfer. A sender gives it in END.
   */
  sha256?: string;
  /** A link's target, as it is (never followed by the receiver). */
  target?: string;
}

export function encodeEntry(entry: FileEntry): Buffer {
  return encodeFrame(FileToken.ENTRY, JSON.stringify(entry));
}

/**
 * A copy's ENT (from the client) announces a file's size, and its sha256 when the client
 * knows it ahead; a fetch's (from the sender) its size only: the sha256 of what was sent
 * comes in END.
 */
export function decodeEntry(payload: Buffer, stream: 'copy' | 'fetch' = 'copy'): FileEntry {
  const value = parseJsonObject(payload, 'ENT');
  if (!isCount(value.i)) throw new ProtocolError('ENT must carry its number');
  const path = checkedRelativePath(value.path);
  const { type } = value;
  if (type !== 'file' && type !== 'dir' && type !== 'link') throw new ProtocolError('ENT type must be file, dir or link');
  if (!(Number.isInteger(value.mode) && (value.mode as number) >= 0 && (value.mode as number) <= 0o7777)) {
    throw new ProtocolError('ENT mode must be permission bits (0 to 07777)');
  }
  const entry: FileEntry = { i: value.i, path, type, mode: value.mode as number };
  if (value.mtimeMs !== undefined) {
    if (!(typeof value.mtimeMs === 'number' && Number.isFinite(value.mtimeMs))) throw new ProtocolError('ENT mtimeMs must be a number');
    entry.mtimeMs = value.mtimeMs;
  }
  if (type === 'file') {
    if (!(isCount(value.size) && value.size <= MAX_FILE_SIZE)) throw new ProtocolError('a file ENT must give its size');
    entry.size = value.size;
    if (stream === 'fetch') {
      if (value.sha256 !== undefined) throw new ProtocolError("a sender's file ENT has no sha256 (END carries it)");
    } else {
      if (value.sha256 !== undefined) entry.sha256 = checkedDigest(value.sha256, 'a file ENT sha256');
    }
  } else if (value.size !== undefined || value.sha256 !== undefined) {
    throw new ProtocolError(`a ${type} ENT has no size or sha256`);
  }
  if (type === 'link') entry.target = checkedPath(value.target, 'ENT link target');
  else if (value.target !== undefined) throw new ProtocolError(`a ${type} ENT has no target`);
  return entry;
}

// ---- END, WNT -------------------------------------------------------------

/** WNT (receiver: send it), SAM (client: you have it) and a copy's plain END carry only the entry's number. */
export function encodeEntryNumber(token: typeof FileToken.END | typeof FileToken.WANT | typeof FileToken.SAME, i: number): Buffer {
  return encodeFrame(token, JSON.stringify({ i }));
}

export function decodeEntryNumber(payload: Buffer, token: string): number {
  const value = parseJsonObject(payload, token);
  if (!isCount(value.i)) throw new ProtocolError(`${token} must carry an entry number`);
  return value.i;
}

/** A copy client's END: the entry's number, and the sha256 of the bytes it sent when its ENT had none. */
interface CopyEnd {
  i: number;
  sha256?: string;
}

export function encodeCopyEnd(end: CopyEnd): Buffer {
  return encodeFrame(FileToken.END, JSON.stringify(end));
}

export function decodeCopyEnd(payload: Buffer): CopyEnd {
  const value = parseJsonObject(payload, 'END');
  if (!isCount(value.i)) throw new ProtocolError('END must carry an entry number');
  return value.sha256 === undefined ? { i: value.i } : { i: value.i, sha256: checkedDigest(value.sha256, 'a copy END sha256') };
}

/** HAV: the receiver has a regular file of the announced size, with this sha256. */
interface HaveNote {
  i: number;
  sha256: string;
}

export function encodeHave(note: HaveNote): Buffer {
  return encodeFrame(FileToken.HAVE, JSON.stringify(note));
}

export function decodeHave(payload: Buffer): HaveNote {
  const value = parseJsonObject(payload, 'HAV');
  if (!isCount(value.i)) throw new ProtocolError('HAV must carry an entry number');
  return { i: value.i, sha256: checkedDigest(value.sha256, 'HAV sha256') };
}

/** A sender's END: the entry's number, and the size and sha256 of the bytes it sent. */
interface SentEnd {
  i: number;
  size: number;
  sha256: string;
}

export function encodeSentEnd(end: SentEnd): Buffer {
  return encodeFrame(FileToken.END, JSON.stringify(end));
}

export function decodeSentEnd(payload: Buffer): SentEnd {
  const value = parseJsonObject(payload, 'END');
  if (!isCount(value.i)) throw new ProtocolError('END must carry an entry number');
  if (!(isCount(value.size) && value.size <= MAX_FILE_SIZE)) throw new ProtocolError("a sender's END must give the size sent");
  return { i: value.i, size: value.size, sha256: checkedDigest(value.sha256, "a sender's END sha256") };
}

// ---- TMP ------------------------------------------------------------------

interface TempNote {
  i: number;
  /** The temporary file's real path on the host. */
  path: string;
}

export function encodeTempNote(note: TempNote): Buffer {
  return encodeFrame(FileToken.TEMP, JSON.stringify(note));
}

export function decodeTempNote(payload: Buffer): TempNote {
  const value = parseJsonObject(payload, 'TMP');
  if (!isCount(value.i)) throw new ProtocolError('TMP must carry an entry number');
  const path = checkedPath(value.path, 'TMP path');
  if (!path.startsWith('/')) throw new ProtocolError('TMP path must be absolute');
  return { i: value.i, path };
}

// ---- FIL ------------------------------------------------------------------

type EntryOutcome = 'changed' | 'unchanged' | 'failed';

export interface EntryResult {
  i: number;
  /** The path on the host the entry was written to (or would have been). */
  path: string;
  outcome: EntryOutcome;
  /** A file's SHA-256 on the host now (changed, unchanged), and its size. */
  sha256?: string;
  size?: number;
  /** A changed file's SHA-256 before, or null when there was none. */
  previous?: string | null;
  /** What changed: the content, or only the mode (or owner). */
  what?: 'content' | 'mode';
  /** Why it failed, in words, and its error code. */
  reason?: string;
  code?: ErrorCode;
}

/** Codes a receiver may name in FIL. */
const RESULT_CODES: ReadonlySet<string> = new Set([ErrorCodes.DENIED, ErrorCodes.FILE, ErrorCodes.LIMIT, ErrorCodes.PROTOCOL, ErrorCodes.INTERNAL]);

export function encodeResult(result: EntryResult): Buffer {
  return encodeFrame(FileToken.RESULT, JSON.stringify(result));
}

export function decodeResult(payload: Buffer): EntryResult {
  const value = parseJsonObject(payload, 'FIL');
  if (!isCount(value.i)) throw new ProtocolError('FIL must carry an entry number');
  const path = checkedPath(value.path, 'FIL path');
  const { outcome } = value;
  if (outcome !== 'changed' && outcome !== 'unchanged' && outcome !== 'failed')
    throw new ProtocolError('FIL outcome must be changed, unchanged or failed');
  const result: EntryResult = { i: value.i, path, outcome };
  if (value.sha256 !== undefined) result.sha256 = checkedDigest(value.sha256, 'FIL sha256');
  if (isCount(value.size)) result.size = value.size;
  if (value.previous !== undefined) result.previous = value.previous === null ? null : checkedDigest(value.previous, 'FIL previous');
  if (value.what === 'content' || value.what === 'mode') result.what = value.what;
  if (outcome === 'failed') {
    result.reason = typeof value.reason === 'string' ? value.reason.slice(0, 1000) : 'no reason given';
    result.code = RESULT_CODES.has(value.code as string) ? (value.code as ErrorCode) : ErrorCodes.FILE;
  }
  return result;
}

// ---- checks ---------------------------------------------------------------

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function checkedDigest(value: unknown, what: string): string {
  if (typeof value === 'string' && /^[0-9a-f]{64}$/.test(value)) return value;
  throw new ProtocolError(`${what} must be a sha256 in lower-case hex`);
}

/** Any path: text without NUL (lone surrogates cannot become bytes), at most MAX_PATH_BYTES. */
function checkedPath(value: unknown, what: string): string {
  if (typeof value !== 'string' || value === '') throw new ProtocolError(`${what} must be a non-empty path`);
  if (value.includes('\0') || Buffer.from(value).toString() !== value) throw new ProtocolError(`${what} must be text without NUL`);
  if (Buffer.byteLength(value) > MAX_PATH_BYTES) throw new ProtocolError(`${what} is longer than ${MAX_PATH_BYTES} bytes`);
  return value;
}

/** Why `name` cannot be one component of a path inside a destination, or undefined when it can. */
export function componentProblem(name: string): string | undefined {
  if (name === '' || name === '.' || name === '..') return `"${name}" is not a file name`;
  if (name.includes('/') || name.includes('\0')) return 'a file name cannot contain / or NUL';
  if (Buffer.byteLength(name) > MAX_NAME_BYTES) return `a file name is longer than ${MAX_NAME_BYTES} bytes`;
  return undefined;
}

/** An entry path: relative, each component a plain name, so that it stays inside the destination. */
function checkedRelativePath(value: unknown): string {
  const path = checkedPath(value, 'ENT path');
  if (path.startsWith('/')) throw new ProtocolError('ENT path must be relative');
  for (const name of path.split('/')) {
    const problem = componentProblem(name);
    if (problem) throw new ProtocolError(`ENT path ${JSON.stringify(path)}: ${problem}`);
  }
  return path;
}
