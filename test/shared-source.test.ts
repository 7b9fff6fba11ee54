// SharedSources (execution/shared-source.ts) on a real file: the hosts sending a file at
// the same time share each chunk read (the very same buffer), a host never runs more
// than the window ahead of the slowest, and a host that starts late gets a read of its own.
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SharedSources } from '../src/cli/execution/shared-source.js';
import { cleanupAll, tempDir } from './helpers/fleet.js';

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
