// Property tests for the frame decoder (fast-check): any frames, split anywhere, decode
// to themselves; any bytes either decode or raise a ProtocolError, never anything else.
import test from 'ava';
import fc from 'fast-check';
import { ProtocolError } from '../src/errors.js';
import { FrameDecoder } from '../src/protocol/frame-decoder.js';
import { decodeCommand, encodeCommand, encodeFrame } from '../src/protocol/messages.js';

const token = fc.stringMatching(/^[A-Z]{3}$/);
const frame = fc.record({ token, payload: fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)) });

/** Cuts `bytes` at the given (sorted, deduplicated) offsets. */
function split(bytes: Buffer, cuts: number[]): Buffer[] {
  const offsets = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let from = 0;
  for (const cut of [...offsets, bytes.length]) {
    pieces.push(bytes.subarray(from, cut));
    from = cut;
  }
  return pieces;
}

test('frames split at random points decode to the same frames', (t) => {
  fc.assert(
    fc.property(fc.array(frame, { maxLength: 12 }), fc.array(fc.nat(), { maxLength: 20 }), (frames, cuts) => {
      const bytes = Buffer.concat(frames.map((f) => encodeFrame(f.token, f.payload)));
      const decoder = new FrameDecoder({ maxPayload: 1024 });
      const out = split(bytes, cuts).flatMap((piece) => decoder.push(piece));
      return (
        out.length === frames.length &&
        out.every((f, i) => f.token === frames[i]!.token && f.payload.equals(frames[i]!.payload)) &&
        decoder.bufferedBytes === 0
      );
    }),
    { numRuns: 500 },
  );
  t.pass();
});

test('streamed tokens come piece by piece, each a view of a received chunk; other frames come whole and in order', (t) => {
  const streamed = new Set(['OUT', 'ERR']);
  const mixed = fc.record({
    token: fc.constantFrom('OUT', 'ERR', 'EXT', 'VER'),
    payload: fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
  });
  fc.assert(
    fc.property(fc.array(mixed, { maxLength: 12 }), fc.array(fc.nat(), { maxLength: 20 }), (frames, cuts) => {
      const bytes = Buffer.concat(frames.map((f) => encodeFrame(f.token, f.payload)));
      const decoder = new FrameDecoder({ maxPayload: 1024, streamed });
      const chunks = split(bytes, cuts);
      const out = chunks.flatMap((chunk) => decoder.push(chunk));
      // Per token, the pieces concatenate to the payloads; the whole frames are the same frames.
      const joined = (token: string, list: Array<{ token: string; payload: Buffer }>) =>
        Buffer.concat(list.filter((f) => f.token === token).map((f) => f.payload));
      const sameStreams = [...streamed].every((tk) => joined(tk, out).equals(joined(tk, frames)));
      const whole = (list: Array<{ token: string; payload: Buffer }>) => list.filter((f) => !streamed.has(f.token));
      const sameWhole =
        whole(out).length === whole(frames).length &&
        whole(out).every((f, i) => f.token === whole(frames)[i]!.token && f.payload.equals(whole(frames)[i]!.payload));
      // No copies: every non-empty piece lies inside one of the chunks it came in.
      const views = out
        .filter((f) => streamed.has(f.token) && f.payload.length > 0)
        .every((f) =>
          chunks.some(
            (c) =>
              c.buffer === f.payload.buffer &&
              f.payload.byteOffset >= c.byteOffset &&
              f.payload.byteOffset + f.payload.length <= c.byteOffset + c.length,
          ),
        );
      // Order across tokens is kept: the token sequence, with each frame's pieces merged, is the frames' sequence.
      const sequence = out.map((f) => f.token).filter((tk, i, all) => !streamed.has(tk) || i === 0 || all[i - 1] !== tk);
      const expected = frames.map((f) => f.token).filter((tk, i, all) => !streamed.has(tk) || i === 0 || all[i - 1] !== tk);
      return sameStreams && sameWhole && views && sequence.join() === expected.join() && decoder.bufferedBytes === 0;
    }),
    { numRuns: 500 },
  );
  t.pass();
});

test('random bytes never throw anything but ProtocolError, and nothing is buffered beyond one frame', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 2000 }), fc.array(fc.nat(), { maxLength: 10 }), (raw, cuts) => {
      const decoder = new FrameDecoder({ maxPayload: 512 });
      try {
        for (const piece of split(Buffer.from(raw), cuts)) decoder.push(piece);
      } catch (err) {
        return err instanceof ProtocolError;
      }
      return decoder.bufferedBytes <= 512 + 7;
    }),
    { numRuns: 1000 },
  );
  t.pass();
});

test('any argv without NUL bytes round-trips exactly', (t) => {
  const arg = fc.string({ unit: 'grapheme', maxLength: 40 }).filter((s) => !s.includes('\0'));
  fc.assert(
    fc.property(
      fc.tuple(
        arg.filter((s) => s !== ''),
        fc.array(arg, { maxLength: 8 }),
      ),
      ([program, rest]) => {
        const argv = [program, ...rest];
        const decoded = decodeCommand(encodeCommand(argv).subarray(7));
        return decoded.length === argv.length && decoded.every((a, i) => a === argv[i]);
      },
    ),
    { numRuns: 500 },
  );
  t.pass();
});
