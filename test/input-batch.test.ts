// InputBatch in memory: what a session writes to a command's stdin when the client's
// input arrives in many small pieces.
import test from 'ava';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { InputBatch } from '../src/agent/input-batch.js';

function recording() {
  const writes: Buffer[] = [];
  return { writes, batch: new InputBatch((data) => writes.push(data)) };
}

test('pieces of one turn of the event loop are written once, in order, after it', async (t) => {
  const { writes, batch } = recording();
  for (const piece of ['a', 'bc', '', 'def']) batch.add(Buffer.from(piece));
  t.deepEqual(writes, [], 'nothing is written while the turn goes on');
  await nextTurn();
  t.deepEqual(writes.map(String), ['abcdef']);
  batch.add(Buffer.from('g'));
  await nextTurn();
  t.deepEqual(writes.map(String), ['abcdef', 'g'], 'a later piece is a write of its own');
});

test('256 KiB held are written at once; what follows waits for the turn to end', async (t) => {
  const { writes, batch } = recording();
  const piece = Buffer.alloc(16 * 1024, 1);
  for (let i = 0; i < 17; i++) batch.add(piece);
  t.deepEqual(
    writes.map((w) => w.length),
    [256 * 1024],
  );
  await nextTurn();
  t.deepEqual(
    writes.map((w) => w.length),
    [256 * 1024, 16 * 1024],
  );
});

test('flush writes what is held at once (before EOF or a signal), and nothing when nothing is', async (t) => {
  const { writes, batch } = recording();
  batch.flush();
  batch.add(Buffer.from('last line\n'));
  batch.flush();
  t.deepEqual(writes.map(String), ['last line\n']);
  await nextTurn();
  t.deepEqual(writes.map(String), ['last line\n'], 'the scheduled write finds nothing more');
});
