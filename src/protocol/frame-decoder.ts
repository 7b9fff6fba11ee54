import { ErrorCodes, ProtocolError } from '../errors.js';
import { DEFAULT_MAX_PAYLOAD, HEADER_BYTES, TOKEN_BYTES } from './constants.js';

export interface Frame {
  token: string;
  /** The payload; for a streamed token, the part of it that has arrived (see below). */
  payload: Buffer;
}

const TOKEN_PATTERN = /^[A-Z]{3}$/;

/**
 * Incremental frame decoder: feed it chunks of a byte stream in any split and it
 * returns the whole frames they complete. Pure (no I/O); it buffers at most one
 * header and one payload, and rejects an oversized length before allocating.
 *
 * Tokens listed in `streamed` (output and input bytes, whose frame boundaries carry no
 * meaning) are not buffered: their payload is returned piece by piece as it arrives,
 * each piece a view of the received chunk, so a stream of them is never copied. A
 * frame yields at least one piece (an empty one for an empty payload).
 */
export class FrameDecoder {
  /** Largest payload accepted; may be changed between pushes (e.g. raised after auth). */
  maxPayload: number;
  private readonly streamed: ReadonlySet<string>;
  private readonly checkLength: ((token: string, length: number) => void) | undefined;

  // Bytes received but not yet part of a returned frame.
  private chunks: Buffer[] = [];
  private buffered = 0;
  // Set once a header has been read and its payload is awaited.
  private pendingToken: string | undefined;
  private pendingLength = 0;
  private failed = false;

  /**
   * `checkLength` sees every header before its payload is buffered and may throw (a
   * receiver's own limits per token); the decoder then stays failed as on a bad header.
   */
  constructor(
    options: {
      maxPayload?: number;
      streamed?: ReadonlySet<string>;
      checkLength?: (token: string, length: number) => void;
    } = {},
  ) {
    this.maxPayload = options.maxPayload ?? DEFAULT_MAX_PAYLOAD;
    this.streamed = options.streamed ?? new Set();
    this.checkLength = options.checkLength;
  }

  /** Bytes held for an incomplete frame. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /**
   * Adds bytes and returns the frames completed by them, in order. Throws ProtocolError
   * on a malformed header; after that the decoder stays failed, as the stream has no
   * recoverable frame boundary.
   */
  push(chunk: Buffer): Frame[] {
    return [...this.decode(chunk)];
  }

  /**
   * Like push, but yields the frames one at a time: a consumer that changes `maxPayload`
   * while handling a frame has the next header checked against the new limit, even when
   * both arrived in the same chunk.
   */
  *decode(chunk: Buffer): Generator<Frame, void, undefined> {
    if (this.failed) throw new ProtocolError('frame decoder used after a protocol error');
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    for (;;) {
      if (this.pendingToken === undefined) {
        if (this.buffered < HEADER_BYTES) break;
        const header = this.take(HEADER_BYTES);
        const token = header.toString('latin1', 0, TOKEN_BYTES);
        const length = header.readUInt32BE(TOKEN_BYTES);
        if (!TOKEN_PATTERN.test(token)) {
          this.failed = true;
          throw new ProtocolError(`malformed frame token ${JSON.stringify(token)}`);
        }
        if (length > this.maxPayload) {
          this.failed = true;
          throw new ProtocolError(`${token} frame of ${length} bytes exceeds the limit of ${this.maxPayload} bytes`, ErrorCodes.FRAME_TOO_LARGE);
        }
        try {
          this.checkLength?.(token, length);
        } catch (err) {
          this.failed = true;
          throw err;
        }
        if (length === 0) {
          yield { token, payload: Buffer.alloc(0) };
          continue;
        }
        this.pendingToken = token;
        this.pendingLength = length;
      }
      const token = this.pendingToken;
      if (this.streamed.has(token)) {
        // What has arrived of the payload, up to the end of the first chunk: a view, no copy.
        if (this.buffered === 0) break;
        const piece = this.take(Math.min(this.pendingLength, this.chunks[0]!.length));
        this.pendingLength -= piece.length;
        if (this.pendingLength === 0) this.pendingToken = undefined;
        yield { token, payload: piece };
        continue;
      }
      if (this.buffered < this.pendingLength) break;
      const frame = { token, payload: this.take(this.pendingLength) };
      this.pendingToken = undefined;
      yield frame;
    }
  }

  // Removes `n` buffered bytes (n <= buffered). A slice of one chunk is returned
  // without copying; bytes spanning chunks are joined once.
  private take(n: number): Buffer {
    this.buffered -= n;
    const first = this.chunks[0];
    if (n === 0) return Buffer.alloc(0);
    if (first !== undefined && first.length >= n) {
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.chunks[0]!;
      const use = Math.min(chunk.length, n - filled);
      chunk.copy(out, filled, 0, use);
      filled += use;
      if (use === chunk.length) this.chunks.shift();
      else this.chunks[0] = chunk.subarray(use);
    }
    return out;
  }
}
