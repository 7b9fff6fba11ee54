// The copy receiver (agent/file-receiver.ts) in memory: the file stream in, its answers
// out, real files in a temporary directory. No agent, no session; the same over real
// agents and run-as users is in copy.test.ts.
import test from 'ava';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { FileReceiver, type ReceiverJob } from '../src/agent/file-receiver.js';
import { FileToken } from '../src/protocol/constants.js';
import {
  decodeEntryNumber,
  decodeHave,
  decodeResult,
  encodeCopyEnd,
  encodeEntry,
  encodeEntryNumber,
  type EntryResult,
  type FileEntry,
} from '../src/protocol/file-messages.js';
import { FrameDecoder } from '../src/protocol/frame-decoder.js';
import { encodeFrame } from '../src/protocol/messages.js';
import { cleanupAll, noTemporaries, tempDir } from './helpers/fleet.js';
import { sha256Hex as sha } from './helpers/digest.js';

test.after.always(cleanupAll);

/** A receiver for `dest`, and what it answered, decoded. */
function receiver(dest: string, options: Partial<ReceiverJob> & { sources?: number; preserve?: boolean; backup?: boolean } = {}) {
  const { sources = 1, preserve = false, backup = false, ...job } = options;
  const decoder = new FrameDecoder();
  const wants: number[] = [];
  /** HAV answers: entry number and the sha256 of the file the receiver has. */
  const haves: Array<{ i: number; sha256: string }> = [];
  const results: EntryResult[] = [];
  const temps: string[] = [];
  const r = new FileReceiver({ request: { dest, sources, preserve, backup }, setuid: false, ...job }, (frame) => {
    for (const f of decoder.push(frame)) {
      if (f.token === FileToken.WANT) wants.push(decodeEntryNumber(f.payload, 'WNT'));
      else if (f.token === FileToken.HAVE) haves.push(decodeHave(f.payload));
      else if (f.token === FileToken.RESULT) results.push(decodeResult(f.payload));
      else if (f.token === FileToken.TEMP) temps.push(JSON.parse(f.payload.toString()).path);
    }
  });
  let next = 0;
  /** Sends a file entry and, if asked for, its data. */
  const file = (path: string, content: string | Buffer, mode = 0o644, extra: Partial<FileEntry> = {}): void => {
    const i = next++;
    const data = Buffer.from(content);
    r.push(encodeEntry({ i, path, type: 'file', mode, size: data.length, sha256: sha(data), ...extra }));
    if (wants.includes(i)) r.push(Buffer.concat([encodeFrame(FileToken.DATA, data), encodeEntryNumber(FileToken.END, i)]));
  };
  const dir = (path: string, mode = 0o755): void => r.push(encodeEntry({ i: next++, path, type: 'dir', mode }));
  const link = (path: string, target: string): void => r.push(encodeEntry({ i: next++, path, type: 'link', mode: 0o777, target }));
  /** Announces a file without its sha256, as distrun does: the data goes only after WNT, or after HAV when `same` says no. */
  const deferred = (path: string, content: string | Buffer, same: (theirs: string) => boolean, mode = 0o644, end?: { sha256?: string }): number => {
    const i = next++;
    const data = Buffer.from(content);
    r.push(encodeEntry({ i, path, type: 'file', mode, size: data.length }));
    const have = haves.find((h) => h.i === i);
    if (have && same(have.sha256)) r.push(encodeEntryNumber(FileToken.SAME, i));
    else if (have || wants.includes(i)) r.push(Buffer.concat([encodeFrame(FileToken.DATA, data), encodeCopyEnd({ i, sha256: sha(data), ...end })]));
    return i;
  };
  return { r, wants, haves, results, temps, file, deferred, dir, link, entryNumber: () => next++ };
}

test('a file into a directory: asked for, written whole with its mode; the same again is unchanged and not asked for', (t) => {
  const dest = tempDir();
  const first = receiver(dest);
  first.file('app.conf', 'listen 80\n', 0o640);
  t.deepEqual(first.wants, [0]);
  t.like(first.results, [{ i: 0, path: join(dest, 'app.conf'), outcome: 'changed', what: 'content', sha256: sha('listen 80\n'), previous: null }]);
  t.is(first.r.finish(), 0);
  t.is(readFileSync(join(dest, 'app.conf'), 'utf8'), 'listen 80\n');
  t.is(statSync(join(dest, 'app.conf')).mode & 0o7777, 0o640);
  t.true(noTemporaries(dest));
  const again = receiver(dest);
  again.file('app.conf', 'listen 80\n', 0o640);
  t.deepEqual(again.wants, [], 'an identical file costs a hash, not a transfer');
  t.like(again.results, [{ outcome: 'unchanged', sha256: sha('listen 80\n') }]);
  const mode = receiver(dest);
  mode.file('app.conf', 'listen 80\n', 0o600);
  t.deepEqual(mode.wants, []);
  t.like(mode.results, [{ outcome: 'changed', what: 'mode' }]);
  t.is(statSync(join(dest, 'app.conf')).mode & 0o7777, 0o600);
  const content = receiver(dest);
  content.file('app.conf', 'listen 8080\n', 0o600);
  t.like(content.results, [{ outcome: 'changed', what: 'content', previous: sha('listen 80\n'), sha256: sha('listen 8080\n') }]);
});

test('one source to a path that does not exist is written under that name; several need an existing directory', (t) => {
  const dir = tempDir();
  const one = receiver(join(dir, 'renamed.txt'));
  one.file('original.txt', 'x');
  t.like(one.results, [{ outcome: 'changed', path: join(dir, 'renamed.txt') }]);
  t.is(readFileSync(join(dir, 'renamed.txt'), 'utf8'), 'x');
  const two = receiver(join(dir, 'nowhere'), { sources: 2 });
  two.file('a', 'a');
  two.file('b', 'b');
  t.deepEqual(
    two.results.map((r) => r.reason),
    [`${join(dir, 'nowhere')} is not a directory (2 sources go into one)`, `${join(dir, 'nowhere')} is not a directory (2 sources go into one)`],
  );
  t.is(two.r.finish(), 1);
  const missing = receiver(join(dir, 'no', 'such', 'file'));
  missing.file('a', 'a');
  t.like(missing.results, [{ outcome: 'failed', code: 'E_FILE', reason: `${join(dir, 'no', 'such')}: no such file or directory` }]);
});

test('a tree: nested and empty directories, files and a link copied as a link; a second copy changes nothing', (t) => {
  const dest = tempDir();
  const send = () => {
    const s = receiver(dest);
    s.dir('site');
    s.dir('site/empty', 0o700);
    s.dir('site/conf');
    s.file('site/conf/a b\nc ü.txt', Buffer.from([0, 1, 2, 255]));
    s.link('site/current', 'conf/a b\nc ü.txt');
    t.is(s.r.finish(), 0);
    return s.results.map((r) => r.outcome);
  };
  t.deepEqual(send(), ['changed', 'changed', 'changed', 'changed', 'changed']);
  t.deepEqual(readFileSync(join(dest, 'site/conf/a b\nc ü.txt')), Buffer.from([0, 1, 2, 255]));
  t.is(readlinkSync(join(dest, 'site/current')), 'conf/a b\nc ü.txt');
  t.is(statSync(join(dest, 'site/empty')).mode & 0o777, 0o700);
  t.deepEqual(send(), ['unchanged', 'unchanged', 'unchanged', 'unchanged', 'unchanged']);
});

test('a symbolic link below the destination is never followed: a directory link fails the entries below it, a file link is replaced', (t) => {
  const dest = tempDir();
  const outside = tempDir();
  writeFileSync(join(outside, 'shadow'), 'secret');
  symlinkSync(outside, join(dest, 'sub'));
  symlinkSync(join(outside, 'shadow'), join(dest, 'target'));
  const s = receiver(dest, { sources: 2 });
  s.file('sub/shadow', 'owned');
  s.file('target', 'replaced');
  t.like(s.results[0], { outcome: 'failed', reason: `${join(dest, 'sub')} is a symbolic link: links below the destination are not followed` });
  t.like(s.results[1], { outcome: 'changed' });
  t.is(readFileSync(join(outside, 'shadow'), 'utf8'), 'secret', 'nothing written through either link');
  t.true(lstatSync(join(dest, 'target')).isFile(), 'the link itself was replaced by the file');
});

test('a FIFO, a device or a directory in the way is left as it is and reported', (t) => {
  const dest = tempDir();
  execFileSync('mkfifo', [join(dest, 'fifo')]);
  mkdirSync(join(dest, 'dir'));
  const s = receiver(dest, { sources: 3 });
  s.file('fifo', 'x');
  s.file('dir', 'x');
  s.dir('fifo');
  t.deepEqual(
    s.results.map((r) => r.reason),
    [
      `${join(dest, 'fifo')} exists and is not a regular file (a FIFO); it is left as it is`,
      `${join(dest, 'dir')} is a directory`,
      `${join(dest, 'fifo')} exists and is not a directory`,
    ],
  );
  t.true(lstatSync(join(dest, 'fifo')).isFIFO());
});

test('more data than announced, less, or other bytes: the entry fails, the target is untouched, no temporary file stays, the next entry works', (t) => {
  const dest = tempDir();
  writeFileSync(join(dest, 'f'), 'old');
  const s = receiver(dest, { sources: 4 });
  const cases: [string, Buffer][] = [
    ['ten bytes!', Buffer.from('ten bytes! and then a lot more')],
    ['ten bytes!', Buffer.from('ten')],
    ['ten bytes!', Buffer.from('TEN BYTES!')],
  ];
  for (const [announced, sent] of cases) {
    const i = s.entryNumber();
    s.r.push(encodeEntry({ i, path: 'f', type: 'file', mode: 0o644, size: announced.length, sha256: sha(announced) }));
    s.r.push(Buffer.concat([encodeFrame(FileToken.DATA, sent), encodeEntryNumber(FileToken.END, i)]));
  }
  t.deepEqual(
    s.results.map((r) => [r.outcome, r.code, r.reason]),
    [
      ['failed', 'E_LIMIT', 'more data than the 10 bytes announced'],
      ['failed', 'E_FILE', 'only 3 of 10 bytes arrived (the source changed while it was read?)'],
      ['failed', 'E_FILE', 'the content that arrived does not match its sha256 (the source changed while it was read?)'],
    ],
  );
  t.is(readFileSync(join(dest, 'f'), 'utf8'), 'old');
  t.true(noTemporaries(dest));
  s.file('f', 'new');
  t.like(s.results[3], { outcome: 'changed' });
  t.is(s.r.finish(), 1, 'some entries failed');
});

test('a stream that ends (or a signal) mid-file removes the temporary file; the target is untouched', (t) => {
  const dest = tempDir();
  writeFileSync(join(dest, 'big'), 'old');
  for (const stop of ['finish', 'abort'] as const) {
    const s = receiver(dest);
    s.r.push(encodeEntry({ i: 0, path: 'big', type: 'file', mode: 0o644, size: 1000, sha256: sha('x') }));
    s.r.push(encodeFrame(FileToken.DATA, Buffer.alloc(500)));
    t.is(s.temps.length, 1);
    t.true(existsSync(s.temps[0]!), 'the temporary file exists while data arrives');
    if (stop === 'finish') {
      t.is(s.r.finish(), 1);
      t.like(s.results, [{ outcome: 'failed', reason: 'the transfer was interrupted before the file was complete' }]);
    } else {
      s.r.abort();
    }
    t.false(existsSync(s.temps[0]!));
    t.is(readFileSync(join(dest, 'big'), 'utf8'), 'old');
  }
});

test('modes: never world-writable, setuid and setgid only where allowed; -p keeps the mtime', (t) => {
  const dest = tempDir();
  const s = receiver(dest, { sources: 3, preserve: true });
  s.file('open', 'x', 0o666);
  s.file('suid', 'x', 0o4755);
  s.file('dated', 'x', 0o644, { mtimeMs: Date.UTC(2020, 0, 2) });
  t.is(statSync(join(dest, 'open')).mode & 0o7777, 0o664);
  t.is(statSync(join(dest, 'suid')).mode & 0o7777, 0o755);
  t.is(statSync(join(dest, 'dated')).mtimeMs, Date.UTC(2020, 0, 2));
  const allowed = receiver(dest, { preserve: true, setuid: true });
  allowed.file('suid', 'x', 0o4755);
  t.is(statSync(join(dest, 'suid')).mode & 0o7777, 0o4755);
});

test('policy paths: only the patterns the agent passed may be written, matched on the real path', (t) => {
  const root = tempDir();
  mkdirSync(join(root, 'app'));
  mkdirSync(join(root, 'etc'));
  const s = receiver(root, { sources: 2, allowed: [`${root}/app/*`] });
  s.dir('app');
  s.file('app/ok', 'x');
  s.file('etc/no', 'x');
  t.deepEqual(
    s.results.map((r) => [r.outcome, r.code]),
    [
      ['failed', 'E_DENIED'],
      ['changed', undefined],
      ['failed', 'E_DENIED'],
    ],
  );
  t.is(s.results[2]!.reason, `${root}/etc/no is not a path this client may write`);
  t.false(existsSync(join(root, 'etc', 'no')));
});

test('--backup keeps each replaced file as NAME.~N~', (t) => {
  const dest = tempDir();
  writeFileSync(join(dest, 'f'), 'v1');
  for (const version of ['v2', 'v3']) receiver(dest, { backup: true }).file('f', version);
  t.is(readFileSync(join(dest, 'f'), 'utf8'), 'v3');
  t.is(readFileSync(join(dest, 'f.~1~'), 'utf8'), 'v1');
  t.is(readFileSync(join(dest, 'f.~2~'), 'utf8'), 'v2');
});

test('the stream itself is checked: names that leave the destination, numbers out of order, data without a file', (t) => {
  const dest = tempDir();
  for (const path of ['../x', 'a/../../x', '/etc/x', 'a//b', '.', 'a\0b']) {
    t.throws(() => receiver(dest).r.push(encodeEntry({ i: 0, path, type: 'dir', mode: 0o755 })), { message: /ENT path/ }, path);
  }
  t.throws(() => receiver(dest).r.push(encodeEntry({ i: 1, path: 'a', type: 'dir', mode: 0o755 })), { message: 'ENT 1 where 0 was expected' });
  t.throws(() => receiver(dest).r.push(encodeFrame(FileToken.DATA, 'x')), { message: 'DAT without a file being received' });
  t.deepEqual(readdirSync(dest), []);
});

test('--owner: files and directories get the user and group named (resolved on the host); an unknown name fails the entry', (t) => {
  const dest = tempDir();
  const s = receiver(dest, { sources: 3, owner: 'nobody:nogroup' });
  s.dir('d');
  s.file('d/f', 'x');
  t.is(statSync(join(dest, 'd')).uid, 65534);
  t.is(statSync(join(dest, 'd', 'f')).uid, 65534);
  t.is(statSync(join(dest, 'd', 'f')).gid, 65534);
  // The same content under another owner is changed without a transfer.
  const root = receiver(dest, { sources: 1, owner: 'root' });
  root.file('d', 'x');
  const back = receiver(join(dest, 'd'), { owner: 'root' });
  back.file('f', 'x');
  t.deepEqual(back.wants, []);
  t.like(back.results, [{ outcome: 'changed', what: 'mode' }]);
  t.is(statSync(join(dest, 'd', 'f')).uid, 0);
  const unknown = receiver(dest, { owner: 'no-such-user-here' });
  unknown.file('g', 'x');
  t.like(unknown.results, [{ outcome: 'failed', reason: '--owner: no user no-such-user-here on this host' }]);
});

test('--owner with setuid allowed and -p: the bits survive the change of owner (which clears them, so the mode is set after it)', (t) => {
  const dest = tempDir();
  const s = receiver(dest, { sources: 2, preserve: true, setuid: true, owner: 'nobody:nogroup' });
  s.file('tool', 'x', 0o4755);
  s.dir('shared', 0o2775);
  t.is(statSync(join(dest, 'tool')).mode & 0o7777, 0o4755);
  t.is(statSync(join(dest, 'tool')).uid, 65534);
  t.is(statSync(join(dest, 'shared')).mode & 0o7777, 0o2775);
});

test('a file announced without its sha256: WNT when nothing of its size is there; HAV with the sha256 of that file when one is; SAM keeps it, data replaces it', (t) => {
  const dest = tempDir();
  const target = join(dest, 'app.conf');
  const ours = (theirs: string): boolean => theirs === sha('listen 80\n');
  const first = receiver(dest);
  first.deferred('app.conf', 'listen 80\n', ours, 0o640);
  t.deepEqual([first.wants, first.haves], [[0], []], 'no file there: asked for at once');
  t.like(first.results, [{ outcome: 'changed', what: 'content', sha256: sha('listen 80\n'), previous: null }]);
  t.is(readFileSync(target, 'utf8'), 'listen 80\n');
  writeFileSync(join(dest, 'other.conf'), 'x');
  const other = receiver(dest);
  other.deferred('other.conf', 'listen 80\n', ours);
  t.deepEqual([other.wants, other.haves], [[0], []], 'a file of another size: asked for, not offered');
  t.is(readFileSync(join(dest, 'other.conf'), 'utf8'), 'listen 80\n');

  const again = receiver(dest);
  again.deferred('app.conf', 'listen 80\n', ours, 0o640);
  t.deepEqual(again.haves, [{ i: 0, sha256: sha('listen 80\n') }]);
  t.deepEqual(again.wants, [], 'offered, not asked for');
  t.like(again.results, [{ i: 0, outcome: 'unchanged', sha256: sha('listen 80\n') }]);
  t.is(again.r.finish(), 0);
  t.true(noTemporaries(dest), 'the temporary file made for the offer is gone');
  const mode = receiver(dest);
  mode.deferred('app.conf', 'listen 80\n', ours, 0o600);
  t.like(mode.results, [{ outcome: 'changed', what: 'mode' }]);
  t.is(statSync(target).mode & 0o7777, 0o600);

  // Same size, other bytes: the client's sha256 differs, so it sends the data.
  const content = receiver(dest);
  content.deferred('app.conf', 'listen 81\n', (theirs) => theirs === sha('listen 81\n'), 0o600);
  t.is(content.haves.length, 1);
  t.like(content.results, [{ outcome: 'changed', what: 'content', previous: sha('listen 80\n'), sha256: sha('listen 81\n') }]);
  t.is(readFileSync(target, 'utf8'), 'listen 81\n');
  t.true(noTemporaries(dest));
});

test('a deferred sha256 is checked: END with another sha256, or none, fails the entry and leaves the target; SAM unasked for breaks the stream; a file replaced while compared is not called unchanged', (t) => {
  const dest = tempDir();
  const target = join(dest, 'f');
  const wrong = receiver(dest);
  wrong.deferred('f', 'new bytes', () => false, 0o644, { sha256: sha('other bytes') });
  t.like(wrong.results, [{ outcome: 'failed' }]);
  t.regex(wrong.results[0]!.reason!, /does not match its sha256/);
  t.false(existsSync(target));
  const none = receiver(dest);
  none.r.push(encodeEntry({ i: 0, path: 'f', type: 'file', mode: 0o644, size: 1 }));
  none.r.push(Buffer.concat([encodeFrame(FileToken.DATA, Buffer.from('x')), encodeEntryNumber(FileToken.END, 0)]));
  t.like(none.results, [{ outcome: 'failed' }]);
  t.regex(none.results[0]!.reason!, /sent no sha256/);
  t.false(existsSync(target));
  t.true(noTemporaries(dest));

  const unasked = receiver(dest);
  unasked.r.push(encodeEntry({ i: 0, path: 'f', type: 'file', mode: 0o644, size: 1 }));
  t.throws(() => unasked.r.push(encodeEntryNumber(FileToken.SAME, 0)), { message: /SAM 0 for a file that was not offered/ });
  unasked.r.abort();

  writeFileSync(target, 'aaaa');
  const raced = receiver(dest);
  raced.r.push(encodeEntry({ i: 0, path: 'f', type: 'file', mode: 0o644, size: 4 }));
  t.deepEqual(raced.haves, [{ i: 0, sha256: sha('aaaa') }]);
  writeFileSync(join(dest, 'swap'), 'bbbb');
  execFileSync('mv', [join(dest, 'swap'), target]);
  raced.r.push(encodeEntryNumber(FileToken.SAME, 0));
  t.like(raced.results, [{ outcome: 'failed' }]);
  t.regex(raced.results[0]!.reason!, /changed on the host while it was compared; nothing was written/);
  t.is(readFileSync(target, 'utf8'), 'bbbb');
  t.is(raced.r.finish(), 1);
  t.true(noTemporaries(dest));
});
