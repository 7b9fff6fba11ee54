// -t and --tty's input broadcast (execution/input-broadcast.ts) with fake sessions, in
// memory: every host gets all of stdin, including hosts that start after part was read.
import test from 'ava';
import { PassThrough } from 'node:stream';
import { setImmediate as tick } from 'node:timers/promises';
import { InputBroadcast } from '../src/cli/execution/input-broadcast.js';
import { FakeSession, target } from './helpers/fake-session.js';

test('a host that starts late gets what was read before, then the rest, then the end', async (t) => {
  const stdin = new PassThrough();
  const broadcast = new InputBroadcast(stdin);
  const early = new FakeSession(target('web1'));
  broadcast.attach(early);
  stdin.write('one ');
  await tick();
  const late = new FakeSession(target('web2'));
  broadcast.attach(late);
  stdin.end('two');
  await tick();
  for (const session of [early, late]) {
    t.is(Buffer.concat(session.input).toString(), 'one two');
    t.true(session.inputEnded);
  }
  const afterEnd = new FakeSession(target('web3'));
  broadcast.attach(afterEnd);
  t.is(Buffer.concat(afterEnd.input).toString(), 'one two');
  t.true(afterEnd.inputEnded, 'a host started after the end gets the end at once');
});

test('a host that has ended gets no more input', async (t) => {
  const stdin = new PassThrough();
  const broadcast = new InputBroadcast(stdin);
  const session = new FakeSession(target('web1'));
  broadcast.attach(session);
  session.end();
  stdin.end('late');
  await tick();
  t.deepEqual(session.input, []);
  t.false(session.inputEnded);
});
