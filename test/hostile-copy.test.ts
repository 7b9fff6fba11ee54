// A hostile client, and a hostile host file system, against the copy path: raw file
// streams a real distrun would never send, and a directory whose links are swapped
// while copies run. Each test ends with the agent still serving.
import test, { type ExecutionContext } from 'ava';
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AgentToken, ClientToken, FileToken } from '../src/protocol/constants.js';
import { decodeResult, encodeCopyRequest, encodeEntry, encodeEntryNumber, type EntryResult } from '../src/protocol/file-messages.js';
import { FrameDecoder, type Frame } from '../src/protocol/frame-decoder.js';
import { decodeExit, defaultSessionOptions, encodeFrame, encodeOptions, encodeVersionOffer } from '../src/protocol/messages.js';
import { cleanupAll, distrun, makePki, rawExchange, startAgent, tempDir, type Pki, type RunningAgent } from './helpers/fleet.js';
import { assertStillServing } from './helpers/serving.js';
import { sha256Hex as sha } from './helpers/digest.js';

let pki: Pki;
let agent: RunningAgent;

test.before(async () => {
  pki = await makePki(['agent1']);
  agent = await startAgent(pki, 'agent1');
});
test.after.always(cleanupAll);

/** A PUT session with the given file stream, all sent at once; the receiver's answers, its stderr and exit. */
async function rawCopy(dest: string, stream: Buffer[]): Promise<{ results: EntryResult[]; stderr: string; exit: unknown; frames: Frame[] }> {
  const frames = await rawExchange(agent.port, pki.dir, [
    encodeVersionOffer({ versions: [5], software: 'hostile' }),
    ...encodeOptions({ ...defaultSessionOptions(), stdin: true, stderr: true }),
    encodeCopyRequest({ dest, sources: 1, preserve: false, backup: false }),
    ...stream.map((chunk) => encodeFrame(ClientToken.INPUT, chunk)),
    encodeFrame(ClientToken.END_OF_INPUT),
  ]);
  const out = Buffer.concat(frames.filter((f) => f.token === AgentToken.STDOUT).map((f) => f.payload));
  const results = new FrameDecoder()
    .push(out)
    .filter((f) => f.token === FileToken.RESULT)
    .map((f) => decodeResult(f.payload));
  const stderr = Buffer.concat(frames.filter((f) => f.token === AgentToken.STDERR).map((f) => f.payload)).toString();
  const ext = frames.find((f) => f.token === AgentToken.EXIT);
  return { results, stderr, exit: ext && decodeExit(ext.payload), frames };
}

test('entry names that would leave the destination end the stream (exit 2, the reason on stderr); nothing is written anywhere', async (t) => {
  const root = tempDir();
  const dest = join(root, 'dest');
  mkdirSync(dest);
  for (const path of ['../escaped', 'a/../../escaped', '/tmp/escaped', 'a//b', 'x\0y']) {
    const { stderr, exit, results } = await rawCopy(dest, [
      encodeEntry({ i: 0, path, type: 'file', mode: 0o644, size: 1, sha256: sha('x') } as never),
    ]);
    t.deepEqual(exit, { code: 2, timedOut: false }, path);
    t.regex(stderr, /^distrun file receiver: ENT path/, path);
    t.deepEqual(results, []);
  }
  t.deepEqual(readdirSync(root), ['dest']);
  t.deepEqual(readdirSync(dest), []);
  await assertStillServing(t, agent, pki.dir);
});

test('a client that announces 10 bytes and sends 10 MB, or announces 10 GB and sends 10 bytes: that entry fails, the next one is written', async (t) => {
  const dest = tempDir();
  const big = Buffer.alloc(10 * 1024 * 1024, 7);
  const { results, exit } = await rawCopy(dest, [
    encodeEntry({ i: 0, path: 'small', type: 'file', mode: 0o644, size: 10, sha256: sha(big.subarray(0, 10)) }),
    ...Array.from({ length: 40 }, (_, k) => encodeFrame(FileToken.DATA, big.subarray(k * 262144, (k + 1) * 262144))),
    encodeEntryNumber(FileToken.END, 0),
    encodeEntry({ i: 1, path: 'huge', type: 'file', mode: 0o644, size: 10 * 1024 ** 3, sha256: sha('x') }),
    encodeFrame(FileToken.DATA, 'ten bytes!'),
    encodeEntryNumber(FileToken.END, 1),
    encodeEntry({ i: 2, path: 'fine', type: 'file', mode: 0o644, size: 4, sha256: sha('fine') }),
    encodeFrame(FileToken.DATA, 'fine'),
    encodeEntryNumber(FileToken.END, 2),
  ]);
  t.deepEqual(exit, { code: 1, timedOut: false });
  t.deepEqual(
    results.map((r) => [r.i, r.outcome, r.code ?? null]),
    [
      [0, 'failed', 'E_LIMIT'],
      [1, 'failed', 'E_FILE'],
      [2, 'changed', null],
    ],
  );
  t.is(results[1]!.reason, `only 10 of ${10 * 1024 ** 3} bytes arrived (the source changed while it was read?)`);
  t.deepEqual(readdirSync(dest), ['fine']);
  await assertStillServing(t, agent, pki.dir);
});

test('a FIFO or a device at the target is left alone and reported; the copy does not hang', async (t) => {
  const dest = tempDir();
  execFileSync('mkfifo', [join(dest, 'pipe')]);
  const src = join(tempDir(), 'f');
  writeFileSync(src, 'data');
  const inv = join(tempDir(), 'hosts.yaml');
  writeFileSync(inv, `hosts:\n  h1: { address: 127.0.0.1, port: ${agent.port} }\n`);
  const fifo = await distrun(['-i', inv, '--pki', pki.dir, '-H', 'h1', 'copy', src, join(dest, 'pipe')]);
  t.is(fifo.code, 1);
  t.regex(fifo.stderr, /h1: failed .*\/pipe: .*\/pipe exists and is not a regular file \(a FIFO\); it is left as it is/);
  const device = await distrun(['-i', inv, '--pki', pki.dir, '-H', 'h1', 'copy', src, '/dev/null']);
  t.is(device.code, 1);
  t.regex(device.stderr, /h1: failed \/dev\/null: \/dev\/null exists and is not a regular file \(a character device\); it is left as it is/);
  t.true(existsSync('/dev/null'));
  await assertStillServing(t, agent, pki.dir);
});

/** Keeps swapping DIR/NAME between the real directory `real` and the link `evil` (renames are atomic), until killed. */
function swapping(dir: string, name: string) {
  return spawn('/bin/sh', [
    '-c',
    `cd ${dir} && while :; do mv -T real ${name} 2>/dev/null; mv -T ${name} real 2>/dev/null; mv -T evil ${name} 2>/dev/null; mv -T ${name} evil 2>/dev/null; done`,
  ]);
}

const ROUNDS = 25;

/** Copies ROUNDS times while a directory is being swapped for a link; every round, nothing may have appeared behind the link. */
async function race(
  t: ExecutionContext,
  copy: () => Promise<{ code: number | null; stderr: string }>,
  outside: string,
  refusal: RegExp,
): Promise<void> {
  const outcomes = new Map<string, number>();
  for (let round = 0; round < ROUNDS; round++) {
    const r = await copy();
    const kind = r.code === 0 ? 'written' : refusal.test(r.stderr) ? 'refused' : `other: ${r.stderr}`;
    outcomes.set(kind, (outcomes.get(kind) ?? 0) + 1);
    t.deepEqual(readdirSync(outside), [], `round ${round}: nothing appeared behind the link`);
  }
  t.deepEqual(
    [...outcomes.keys()].filter((k) => k.startsWith('other')),
    [],
  );
  t.log(`${ROUNDS} copies while swapping: ${[...outcomes].map(([k, n]) => `${n} ${k}`).join(', ')}`);
}

test('a directory below the destination swapped for a link to elsewhere while copies run: nothing is ever written through it', async (t) => {
  const dest = tempDir();
  const outside = tempDir();
  const site = join(tempDir(), 'site');
  mkdirSync(join(site, 'sub'), { recursive: true });
  writeFileSync(join(site, 'sub', 'payload'), 'planted?');
  mkdirSync(join(dest, 'site', 'real'), { recursive: true });
  symlinkSync(outside, join(dest, 'site', 'evil'));
  const swapper = swapping(join(dest, 'site'), 'sub');
  const inv = join(tempDir(), 'hosts.yaml');
  writeFileSync(inv, `hosts:\n  h1: { address: 127.0.0.1, port: ${agent.port} }\n`);
  try {
    await race(
      t,
      () => distrun(['-i', inv, '--pki', pki.dir, '-H', 'h1', 'copy', '-r', site, dest]),
      outside,
      /symbolic link|not a directory|no such file|keeps appearing and disappearing/,
    );
  } finally {
    swapper.kill('SIGKILL');
  }
  await assertStillServing(t, agent, pki.dir);
});

test('the destination itself swapped for a link while copies run: the policy is matched on the path it resolved to, so nothing lands outside it', async (t) => {
  const allowed = tempDir();
  const outside = tempDir();
  const src = join(tempDir(), 'payload');
  writeFileSync(src, 'planted?');
  mkdirSync(join(allowed, 'real'));
  symlinkSync(outside, join(allowed, 'evil'));
  const guarded = await startAgent(pki, 'agent1', { config: { policy: [{ clients: ['admin'], copy: [`${allowed}/*`], commands: ['echo'] }] } });
  const swapper = swapping(allowed, 'sub');
  const inv = join(tempDir(), 'hosts.yaml');
  writeFileSync(inv, `hosts:\n  h1: { address: 127.0.0.1, port: ${guarded.port} }\n`);
  try {
    await race(
      t,
      () => distrun(['-i', inv, '--pki', pki.dir, '-H', 'h1', 'copy', src, join(allowed, 'sub', 'payload')]),
      outside,
      /is not a path this client may write|symbolic link|no such file|not a directory/,
    );
  } finally {
    swapper.kill('SIGKILL');
  }
  await assertStillServing(t, guarded, pki.dir, []);
});
