// SharedSources (execution/shared-source.ts) on a real file: the hosts sending a file at
// the same time share each chunk read (the very same buffer), a host never runs more
// than the window ahead of the slowest, and a host that starts late gets a read of its own.
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SharedSources } from '../src/cli/execution/shared-source.js';
import { cleanupAll, tempDir } from './helpers/fleet.js';
import { sha256Hex as sha } from './helpers/digest.js';

test.after.always(cleanupAll);

const CHUNK = 256 * 1024;
const WINDOW = 32;

function source(chunks: number): { path: string; data: Buffer } {
  const data = randomBytes(chunks * CHUNK + 100);
  const path = join(tempDir(), 'src.bin');
  writeFileSync(path, data);
  return { path, data };
}

test('two hosts in step get the same buffers; a whole pass gives the file byte for byte', async (t) => {
  const { path, data } = source(3);
  const shared = new SharedSources();
  const [a, b] = [shared.cursor(0, path, data.length), shared.cursor(0, path, data.length)];
  const got: Buffer[] = [];
  for (;;) {
    const [x, y] = await Promise.all([a.next(), b.next()]);
    t.is(x, y, 'one read, the same chunk for both');
    if (x === null) break;
    got.push(x);
  }
  t.deepEqual(Buffer.concat(got), data);
  a.close();
  b.close();
});

test('a host at the window waits for the slowest; a host starting after the first chunk was let go reads on its own', async (t) => {
  const { path, data } = source(WINDOW + 4);
  const shared = new SharedSources();
  const [fast, slow] = [shared.cursor(0, path, data.length), shared.cursor(0, path, data.length)];
  for (let k = 0; k < WINDOW; k++) await fast.next();
  t.is(shared.held(0), WINDOW, 'the slowest has taken none: all 32 are kept');
  const order: string[] = [];
  const ahead = fast.next().then((chunk) => {
    order.push('fast got chunk 32');
    return chunk;
  });
  t.is(shared.held(0), WINDOW, 'chunk 32 is not even read while the slowest is a window behind');
  const first = await slow.next();
  order.push('slow got chunk 0');
  t.deepEqual(await ahead, data.subarray(WINDOW * CHUNK, (WINDOW + 1) * CHUNK));
  t.deepEqual(order, ['slow got chunk 0', 'fast got chunk 32'], 'chunk 32 waited until the slowest had moved on');
  // Chunk 0 is let go now: a late host reads the file again, from its start.
  const late = shared.cursor(0, path, data.length);
  const again = await late.next();
  t.not(again, first);
  t.deepEqual(again, data.subarray(0, CHUNK));
  for (const cursor of [fast, slow, late]) cursor.close();
});

test('a read hashes what it sent: its sha256 once the last chunk is in, none for a file that ended early; an empty file has one at once', async (t) => {
  const { path, data } = source(5);
  const shared = new SharedSources();
  const cursor = shared.cursor(0, path, data.length);
  let sent = 0;
  for (let chunk = await cursor.next(); chunk !== null; chunk = await cursor.next()) {
    sent += chunk.length;
    if (sent < data.length) t.is(cursor.digest(), undefined, 'not before the end');
  }
  t.is(cursor.digest(), sha(data));
  cursor.close();

  const shrunk = source(3);
  const early = new SharedSources().cursor(0, shrunk.path, shrunk.data.length);
  await early.next();
  truncateSync(shrunk.path, CHUNK + 10); // the file shrinks while it is read
  while ((await early.next()) !== null);
  t.is(early.digest(), undefined, 'what was sent is not the file announced: no sha256 to vouch for it');
  early.close();

  const empty = join(tempDir(), 'empty');
  writeFileSync(empty, '');
  t.is(new SharedSources().cursor(0, empty, 0).digest(), sha(Buffer.alloc(0)));
});

test('a digest is read once for every host that wants it; when all let go before the end the read stops, and a later claim reads again', async (t) => {
  const { path, data } = source(64);
  const shared = new SharedSources();
  const a = shared.digest(0, path);
  const b = shared.digest(0, path);
  t.is(a.sha256, b.sha256, 'one read for both');
  t.is(await a.sha256, sha(data));
  a.release();
  b.release();
  const dropped = shared.digest(1, path);
  dropped.release(); // asked for the data at once: the read is stopped
  dropped.release(); // twice is once
  const later = shared.digest(1, path);
  t.not(later.sha256, dropped.sha256, 'a new read');
  t.is(await later.sha256, sha(data));
  later.release();
});
