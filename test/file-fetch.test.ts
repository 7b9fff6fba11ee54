// The two ends of a fetch in memory: the agent's file sender (agent/file-sender.ts) reading
// real files, and the client's writer (cli/execution/fetch-writer.ts) writing them under
// LOCALDIR/HOST, fed the sender's stream or crafted frames of a hostile agent. No agent,
// no session; the same over real agents is in fetch.test.ts.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FileSender, type SenderJob } from '../src/agent/file-sender.js';
import { FetchWriter, hostDirectoryProblem } from '../src/cli/execution/fetch-writer.js';
import { FileToken } from '../src/protocol/constants.js';
import { decodeEntry, decodeResult, decodeSentEnd, encodeEntry, encodeResult, encodeSentEnd } from '../src/protocol/file-messages.js';
import { FrameDecoder } from '../src/protocol/frame-decoder.js';
import { encodeFrame } from '../src/protocol/messages.js';
import { cleanupAll, noTemporaries, tempDir } from './helpers/fleet.js';
import { sha256Hex as sha } from './helpers/digest.js';

test.after.always(cleanupAll);

/** What the sender sends for JOB: the raw stream, its frames and the exit status. */
async function send(paths: string[], job: Partial<SenderJob['request']> & Pick<SenderJob, 'allowed'> = {}) {
  const { allowed, ...request } = job;
  const frames: Buffer[] = [];
  const status = await new FileSender(
    { request: { paths, recursive: false, maxBytes: 1024 ** 3, ...request }, ...(allowed ? { allowed } : {}) },
    (f) => {
      frames.push(Buffer.from(f));
    },
  ).run();
  const stream = Buffer.concat(frames);
  const decoded = new FrameDecoder({ maxPayload: 16 * 1024 * 1024 }).push(stream);
  return { stream, frames: decoded, status };
}

const failures = (frames: { token: string; payload: Buffer }[]) =>
  frames.filter((f) => f.token === FileToken.RESULT).map((f) => decodeResult(f.payload));

test('the sender: a file as ENT (size, no sha256), DAT, END (size and sha256 of what was sent); the writer puts it under LOCALDIR/HOST/<path>', async (t) => {
  const dir = tempDir();
  const file = join(dir, 'app.conf');
  writeFileSync(file, 'listen 80\n', { mode: 0o640 });
  const { stream, frames, status } = await send([file]);
  t.is(status, 0);
  t.deepEqual(
    frames.map((f) => f.token),
    ['ENT', 'DAT', 'END'],
  );
  t.like(decodeEntry(frames[0]!.payload, 'fetch'), { i: 0, path: file.slice(1), type: 'file', size: 10 });
  t.is(decodeEntry(frames[0]!.payload, 'fetch').sha256, undefined);
  t.deepEqual(decodeSentEnd(frames[2]!.payload), { i: 0, size: 10, sha256: sha('listen 80\n') });
  const local = tempDir();
  const writer = new FetchWriter(local, 'web1', 1024);
  writer.push(stream);
  writer.finish();
  t.is(readFileSync(join(local, 'web1', file), 'utf8'), 'listen 80\n');
  t.is(lstatSync(join(local, 'web1', file)).mode & 0o777, 0o640);
  t.like(writer.results, [{ i: 0, path: file, outcome: 'fetched', sha256: sha('listen 80\n'), size: 10 }]);
  t.true(noTemporaries(local));
});

test('the sender: a tree with -r (a link sent as a link), refusals with reasons: missing, a directory without -r, a FIFO, a device, outside policy', async (t) => {
  const dir = tempDir();
  mkdirSync(join(dir, 'tree', 'sub'), { recursive: true });
  writeFileSync(join(dir, 'tree', 'sub', 'f'), 'f');
  symlinkSync('/etc/shadow', join(dir, 'tree', 'link'));
  execFileSync('mkfifo', [join(dir, 'fifo')]);
  const tree = await send([join(dir, 'tree')], { recursive: true });
  t.is(tree.status, 0);
  t.deepEqual(
    tree.frames.filter((f) => f.token === 'ENT').map((f) => decodeEntry(f.payload, 'fetch')),
    [
      { i: 0, path: join(dir, 'tree').slice(1), type: 'dir', mode: lstatSync(join(dir, 'tree')).mode & 0o7777 },
      { i: 1, path: join(dir, 'tree', 'link').slice(1), type: 'link', mode: 0o777, target: '/etc/shadow' },
      { i: 2, path: join(dir, 'tree', 'sub').slice(1), type: 'dir', mode: lstatSync(join(dir, 'tree', 'sub')).mode & 0o7777 },
      { i: 3, path: join(dir, 'tree', 'sub', 'f').slice(1), type: 'file', mode: lstatSync(join(dir, 'tree', 'sub', 'f')).mode & 0o7777, size: 1 },
    ],
  );
  const refused = await send([join(dir, 'missing'), join(dir, 'tree'), join(dir, 'fifo'), '/dev/null', join(dir, 'tree', 'sub', 'f')], {
    allowed: [`${dir}/*`],
  });
  t.is(refused.status, 1);
  t.deepEqual(
    failures(refused.frames).map((r) => [r.i, r.path, r.code, r.reason]),
    [
      [0, join(dir, 'missing'), 'E_FILE', 'no such file or directory'],
      [1, join(dir, 'tree'), 'E_FILE', 'is a directory (add -r to fetch it)'],
      [2, join(dir, 'fifo'), 'E_FILE', 'is a FIFO: only regular files, directories and links are fetched'],
      [3, '/dev/null', 'E_DENIED', 'is not a path this client may read'],
    ],
  );
  t.is(decodeEntry(refused.frames.find((f) => f.token === 'ENT')!.payload, 'fetch').i, 4, 'the allowed file after them is sent');
  const probe = await send(['/nonexistent/secret', `${dir}/missing`], { allowed: [`${dir}/*`] });
  t.deepEqual(
    failures(probe.frames).map((r) => r.reason),
    ['is not a path this client may read', 'no such file or directory'],
    'outside the policy, whether a path exists is not told',
  );
  const device = await send(['/dev/zero']);
  t.like(failures(device.frames), [{ reason: 'is a character device: only regular files, directories and links are fetched' }]);
});

test('the sender stops at maxBytes: a file bigger than what is left is refused at once; a /proc file (st_size 0) is read only up to the cap', async (t) => {
  const dir = tempDir();
  writeFileSync(join(dir, 'a'), 'x'.repeat(60));
  writeFileSync(join(dir, 'b'), 'y'.repeat(60));
  writeFileSync(join(dir, 'c'), 'z');
  const capped = await send([join(dir, 'a'), join(dir, 'b'), join(dir, 'c')], { maxBytes: 100 });
  t.is(capped.status, 1);
  t.deepEqual(
    capped.frames.map((f) => f.token),
    ['ENT', 'DAT', 'END', 'FIL'],
    'nothing is sent after the cap',
  );
  t.like(failures(capped.frames), [{ i: 1, code: 'E_LIMIT', reason: 'exceeds --max-bytes (100 bytes in all); nothing more is sent' }]);
  const proc = await send(['/proc/self/status'], { maxBytes: 64 });
  t.deepEqual(
    proc.frames.map((f) => f.token),
    ['ENT', 'FIL'],
  );
  t.like(decodeEntry(proc.frames[0]!.payload, 'fetch'), { size: 0 });
  t.like(failures(proc.frames), [{ code: 'E_LIMIT' }]);
});

test('host names: / .. control characters, empty, . are refused as directory names; ordinary names pass', (t) => {
  for (const [name, problem] of [
    ['', 'it is empty'],
    ['.', '"." is not a directory name'],
    ['..', '".." is not a directory name'],
    ['../x', 'it contains /'],
    ['a/b', 'it contains /'],
    ['up..there', 'it contains ..'],
    ['bell\u0007', 'it contains a control character'],
    ['esc\u001b[2J', 'it contains a control character'],
    ['nl\nname', 'it contains a control character'],
    ['c1\u009b', 'it contains a control character'],
  ] as const) {
    t.is(hostDirectoryProblem(name), problem, JSON.stringify(name));
  }
  for (const name of ['web01', 'db-2.example.com', '10.0.0.1', 'fe80::1', 'host_x']) t.is(hostDirectoryProblem(name), undefined);
  t.throws(() => new FetchWriter(tempDir(), '../escape', 1), { message: /cannot be a directory name: it contains \// });
});

/** A hostile agent's stream, frame by frame, into a writer for host `evil`. */
function hostile(frames: Buffer[], maxBytes = 1024 ** 2) {
  const local = join(tempDir(), 'local');
  mkdirSync(local);
  const writer = new FetchWriter(local, 'evil', maxBytes);
  let error: Error | undefined;
  try {
    for (const frame of frames) writer.push(frame);
    writer.finish();
  } catch (err) {
    error = err as Error;
    writer.abort();
  }
  return { local, writer, error, parent: join(local, '..') };
}

const file = (i: number, path: string, data: string, extra: object = {}) => [
  encodeFrame(FileToken.ENTRY, JSON.stringify({ i, path, type: 'file', mode: 0o644, size: data.length, ...extra })),
  encodeFrame(FileToken.DATA, data),
  encodeSentEnd({ i, size: data.length, sha256: sha(data) }),
];

test('a hostile stream: ../ and absolute entry paths, / or NUL in a name, sha256 ahead: the host fails, nothing is written outside LOCALDIR/HOST', (t) => {
  for (const path of ['../../x', 'a/../../x', '/etc/x', 'a//b', './x', 'a\0b']) {
    const { error, parent, local } = hostile(file(0, path, 'pwned'));
    t.regex(error?.message ?? '', /ENT path|must be relative|without NUL/, path);
    t.deepEqual(readdirSync(parent), ['local'], path);
    t.deepEqual(readdirSync(local), [], `${path}: nothing at all is written`);
  }
  const ahead = hostile(file(0, 'x', 'data', { sha256: sha('data') }));
  t.regex(ahead.error!.message, /a sender's file ENT has no sha256/);
});

test('a hostile stream: a link then a file through it is refused (links are not followed); a file over a directory fails that entry', (t) => {
  const outside = tempDir();
  const { error, writer, local } = hostile([
    encodeEntry({ i: 0, path: 'etc', type: 'link', mode: 0o777, target: outside }),
    ...file(1, 'etc/passwd', 'pwned'),
    encodeEntry({ i: 2, path: 'd', type: 'dir', mode: 0o755 }),
    ...file(3, 'd', 'over a directory'),
    ...file(4, 'ok', 'fine'),
  ]);
  t.is(error, undefined);
  t.deepEqual(readdirSync(outside), [], 'nothing was written through the link');
  t.is(readlinkSync(join(local, 'evil', 'etc')), outside);
  t.like(writer.results, [
    { i: 0, outcome: 'fetched' },
    { i: 1, outcome: 'failed', reason: `${join(local, 'evil', 'etc')} is a symbolic link: links below the destination are not followed` },
    { i: 2, outcome: 'fetched' },
    { i: 3, outcome: 'failed', reason: `${join(local, 'evil', 'd')} is a directory` },
    { i: 4, outcome: 'fetched' },
  ]);
  t.is(readFileSync(join(local, 'evil', 'ok'), 'utf8'), 'fine');
  t.true(noTemporaries(local));
});

test('a hostile stream: more than --max-bytes fails the host and removes the partial file; a wrong sha256 or size fails the entry', (t) => {
  const big = 'x'.repeat(200);
  const over = hostile(
    [
      encodeFrame(FileToken.ENTRY, JSON.stringify({ i: 0, path: 'big', type: 'file', mode: 0o644, size: 10 })),
      encodeFrame(FileToken.DATA, big.slice(0, 90)),
      encodeFrame(FileToken.DATA, big.slice(90)),
    ],
    100,
  );
  t.regex(over.error!.message, /the agent sent more than --max-bytes \(100 bytes\)/);
  t.is((over.error as Error & { code: string }).code, 'E_LIMIT');
  t.deepEqual(readdirSync(join(over.local, 'evil')), [], 'the partial file is removed');
  const lies = hostile([
    encodeFrame(FileToken.ENTRY, JSON.stringify({ i: 0, path: 'a', type: 'file', mode: 0o644, size: 4 })),
    encodeFrame(FileToken.DATA, 'real'),
    encodeSentEnd({ i: 0, size: 4, sha256: sha('fake') }),
    encodeFrame(FileToken.ENTRY, JSON.stringify({ i: 1, path: 'b', type: 'file', mode: 0o644, size: 4 })),
    encodeFrame(FileToken.DATA, 'real'),
    encodeSentEnd({ i: 1, size: 5, sha256: sha('real') }),
  ]);
  t.is(lies.error, undefined);
  t.like(lies.writer.results, [
    { i: 0, outcome: 'failed', reason: 'the data that arrived does not match the sha256 the agent sent' },
    { i: 1, outcome: 'failed', reason: '4 bytes arrived where the agent says it sent 5' },
  ]);
  t.deepEqual(readdirSync(join(lies.local, 'evil')), []);
});

test('a hostile stream out of order: entry numbers skipped, DAT without an entry, END for another, a FIL claiming success: the host fails', (t) => {
  const cases: [Buffer[], RegExp][] = [
    [file(1, 'x', 'a'), /ENT 1 where 0 was expected/],
    [[encodeFrame(FileToken.DATA, 'loose')], /DAT without a file entry/],
    [[file(0, 'x', 'a')[0]!, encodeSentEnd({ i: 7, size: 0, sha256: sha('') })], /END 7 for a file that is not arriving/],
    [[encodeResult({ i: 0, path: '/x', outcome: 'changed' })], /a sender's FIL must say failed/],
    [[encodeFrame(FileToken.WANT, JSON.stringify({ i: 0 }))], /unexpected WNT in the file stream/],
  ];
  for (const [frames, message] of cases) {
    const { error, local } = hostile(frames);
    t.regex(error?.message ?? 'no error', message);
    t.true(!existsSync(join(local, 'evil')) || noTemporaries(local));
  }
});

test('a stream that ends in the middle of a file: that entry fails, its temporary file is removed', (t) => {
  const { writer, local, error } = hostile(file(0, 'cut', 'incomplete').slice(0, 2));
  t.is(error, undefined);
  t.like(writer.results, [{ i: 0, outcome: 'failed', reason: 'the stream ended before the file was complete' }]);
  t.deepEqual(readdirSync(join(local, 'evil')), []);
});
