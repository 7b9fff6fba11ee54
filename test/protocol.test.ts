import test from 'ava';
import { randomBytes } from 'node:crypto';
import { ErrorCodes, ProtocolError } from '../src/errors.js';
import { FrameDecoder, type Frame } from '../src/protocol/frame-decoder.js';
import {
  applyOption,
  defaultSessionOptions,
  decodeCommand,
  decodeExit,
  decodeFailure,
  decodeHeld,
  decodeSignal,
  decodeVersionOffer,
  encodeCommand,
  encodeExit,
  encodeFailure,
  encodeFrame,
  encodeHeld,
  encodeOptions,
  encodeVersionOffer,
} from '../src/protocol/messages.js';

const payloadOf = (frame: Buffer): Buffer => frame.subarray(7);

const sample: Frame[] = [
  { token: 'VER', payload: Buffer.from('{"versions":[1],"software":"t"}') },
  { token: 'OPT', payload: Buffer.from('stdin') },
  { token: 'CMD', payload: payloadOf(encodeCommand(['echo', 'a b', '', 'ç\n'])) },
  { token: 'INP', payload: Buffer.alloc(0) },
  { token: 'OUT', payload: randomBytes(300) },
  { token: 'EOF', payload: Buffer.alloc(0) },
];
const stream = Buffer.concat(sample.map((f) => encodeFrame(f.token, f.payload)));

function decodeSplit(bytes: Buffer, cuts: number[], maxPayload?: number): Frame[] {
  const decoder = new FrameDecoder({ maxPayload });
  const frames: Frame[] = [];
  let from = 0;
  for (const cut of [...cuts, bytes.length]) {
    frames.push(...decoder.push(bytes.subarray(from, cut)));
    from = cut;
  }
  return frames;
}

const normalise = (frames: Frame[]) => frames.map((f) => ({ token: f.token, payload: f.payload.toString('hex') }));

test('a frame is a 3-byte token, a 4-byte big-endian length and the payload', (t) => {
  const frame = encodeFrame('OUT', Buffer.from('hi'));
  t.deepEqual([...frame], [0x4f, 0x55, 0x54, 0, 0, 0, 2, 0x68, 0x69]);
});

test('every single split point of the stream gives the same frames', (t) => {
  const expected = normalise(sample);
  for (let cut = 0; cut <= stream.length; cut++) {
    t.deepEqual(normalise(decodeSplit(stream, [cut])), expected, `split at ${cut}`);
  }
});

test('every pair of split points gives the same frames', (t) => {
  const expected = normalise(sample);
  const short = stream.subarray(0, 120); // first frames only, to keep the pair count small
  const reference = normalise(decodeSplit(short, []));
  for (let a = 0; a <= short.length; a++) {
    for (let b = a; b <= short.length; b++) {
      const got = normalise(decodeSplit(short, [a, b]));
      if (JSON.stringify(got) !== JSON.stringify(reference)) t.fail(`splits ${a},${b}`);
    }
  }
  t.deepEqual(normalise(decodeSplit(stream, [])), expected);
});

test('byte-by-byte and random chunking give the same frames', (t) => {
  const expected = normalise(sample);
  t.deepEqual(
    normalise(
      decodeSplit(
        stream,
        Array.from({ length: stream.length }, (_, i) => i),
      ),
    ),
    expected,
  );
  for (let round = 0; round < 200; round++) {
    const cuts = Array.from({ length: 1 + (round % 12) }, () => Math.floor(Math.random() * stream.length)).sort((a, b) => a - b);
    t.deepEqual(normalise(decodeSplit(stream, cuts)), expected, `cuts ${cuts.join(',')}`);
  }
});

test('a length above the cap is rejected from the header alone, before the payload arrives', (t) => {
  const decoder = new FrameDecoder({ maxPayload: 1024 });
  const header = Buffer.from([0x4f, 0x55, 0x54, 0xff, 0xff, 0xff, 0xff]);
  const err = t.throws(() => decoder.push(header), { instanceOf: ProtocolError });
  t.is(err?.code, ErrorCodes.FRAME_TOO_LARGE);
  t.regex(err!.message, /exceeds the limit of 1024 bytes/);
  t.is(decoder.bufferedBytes, 0);
  t.throws(() => decoder.push(Buffer.from('x')), { instanceOf: ProtocolError }, 'stays failed');
});

test('the default cap is 1 MiB', (t) => {
  const ok = new FrameDecoder();
  t.is(ok.push(encodeFrame('OUT', Buffer.alloc(1024 * 1024))).length, 1);
  const header = Buffer.alloc(7);
  header.write('OUT');
  header.writeUInt32BE(1024 * 1024 + 1, 3);
  t.throws(() => new FrameDecoder().push(header), { instanceOf: ProtocolError });
});

test('a token that is not three capital letters is a protocol error', (t) => {
  t.throws(() => new FrameDecoder().push(Buffer.from('ab\x00\x00\x00\x00\x00')), { instanceOf: ProtocolError });
});

test('random bytes never crash the decoder: frames or a ProtocolError', (t) => {
  for (let round = 0; round < 2000; round++) {
    const decoder = new FrameDecoder({ maxPayload: 4096 });
    try {
      decoder.push(randomBytes(1 + (round % 64)));
      decoder.push(randomBytes(round % 17));
    } catch (err) {
      if (!(err instanceof ProtocolError)) t.fail(`unexpected ${String(err)}`);
    }
  }
  t.pass();
});

test('argv survives encoding exactly: spaces, quotes, empty strings, newlines, UTF-8', (t) => {
  const argv = ['printf', '%s|', 'a b', '', 'it\'s "quoted"', 'line1\nline2', 'ünïcødé 🚀', ' ', '\t'];
  t.deepEqual(decodeCommand(payloadOf(encodeCommand(argv))), argv);
});

test('malformed CMD payloads are protocol errors', (t) => {
  t.throws(() => decodeCommand(Buffer.alloc(0)), { instanceOf: ProtocolError });
  t.throws(() => decodeCommand(Buffer.from([0, 0, 0])), { instanceOf: ProtocolError });
  t.throws(() => decodeCommand(Buffer.from([0, 0, 0, 9, 0x61])), { instanceOf: ProtocolError });
  t.throws(() => decodeCommand(payloadOf(encodeCommand(['']))), { message: /program name/ });
  t.throws(() => decodeCommand(payloadOf(encodeCommand(['a\0b']))), { message: /NUL/ });
  t.throws(() => decodeCommand(Buffer.from([0, 0, 0, 1, 0xff])), { message: /UTF-8/ });
});

test('options round-trip and unknown options are refused', (t) => {
  const options = defaultSessionOptions();
  const wanted = { stdin: true, stderr: true, shell: true, timeoutMs: 1500, cwd: '/srv/app dir', env: { A: 'x=y', LANG: 'C.UTF-8', EMPTY: '' } };
  for (const frame of encodeOptions(wanted)) applyOption(options, payloadOf(frame));
  t.deepEqual(options, wanted);
  t.throws(() => applyOption(options, Buffer.from('cwd=relative/path')), { message: /absolute path/ });
  t.throws(() => applyOption(options, Buffer.from('env=1BAD=x')), { message: /valid variable name/ });
  t.throws(() => applyOption(options, Buffer.from('env=NOVALUE')), { message: /valid variable name/ });
  t.throws(() => applyOption(options, Buffer.from('bogus')), { message: /unknown option/ });
  t.throws(() => applyOption(options, Buffer.from('timeout=abc')), { instanceOf: ProtocolError });
  t.throws(() => applyOption(options, Buffer.from('stdin=1')), { instanceOf: ProtocolError });
});

test('exit, failure, version and signal messages', (t) => {
  t.deepEqual(decodeExit(payloadOf(encodeExit({ code: 3, timedOut: false }))), { code: 3, timedOut: false });
  t.deepEqual(decodeExit(payloadOf(encodeExit({ signal: 'SIGKILL', timedOut: true }))), { signal: 'SIGKILL', timedOut: true });
  t.throws(() => decodeExit(Buffer.from('{}')), { instanceOf: ProtocolError });
  t.throws(() => decodeExit(Buffer.from('not json')), { instanceOf: ProtocolError });
  t.deepEqual(decodeHeld(payloadOf(encodeHeld({ code: 0 }))), { code: 0 });
  t.deepEqual(decodeHeld(payloadOf(encodeHeld({ signal: 'SIGTERM' }))), { signal: 'SIGTERM' });
  t.is(encodeHeld({ code: 0 }).subarray(0, 3).toString(), 'HLD');
  t.throws(() => decodeHeld(Buffer.from('{"code":-1}')), { instanceOf: ProtocolError, message: /HLD must carry/ });
  t.deepEqual(decodeFailure(payloadOf(encodeFailure({ code: 'E_SPAWN', reason: 'x: command not found', exitCode: 127 }))), {
    code: 'E_SPAWN',
    reason: 'x: command not found',
    exitCode: 127,
  });
  t.deepEqual(decodeVersionOffer(payloadOf(encodeVersionOffer({ versions: [1, 2], software: 's' }))), { versions: [1, 2], software: 's' });
  t.throws(() => decodeVersionOffer(Buffer.from('{"versions":[]}')), { instanceOf: ProtocolError });
  t.is(decodeSignal(Buffer.from('INT')), 'SIGINT');
  t.throws(() => decodeSignal(Buffer.from('SEGV')), { instanceOf: ProtocolError });
});
