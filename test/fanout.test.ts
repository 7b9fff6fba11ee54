// The fan-out scheduler (execution/fanout.ts) with fake sessions, in memory: how many
// hosts are in flight, batches, --max-fail, stop (Ctrl-C), and results in target order.
import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import { Fanout, scheduleFor, type FanoutLimits } from '../src/cli/execution/fanout.js';
import { failureReason, type HostResult } from '../src/cli/execution/outcome.js';
import { FakeSession, target } from './helpers/fake-session.js';

const FAILED = { kind: 'exit', code: 1, timedOut: false } as const;

/** A fan-out over `n` hosts whose sessions the test ends; what started and ended, in order. */
function fleet(n: number, limits: Partial<FanoutLimits>) {
  const targets = Array.from({ length: n }, (_, i) => target(`h${i + 1}`));
  const sessions = new Map<string, FakeSession>();
  const started: string[] = [];
  const done: HostResult[] = [];
  const fanout = new Fanout(
    targets,
    { fanout: n, batchSize: Infinity, batchWaitMs: 0, maxFail: Infinity, ...limits },
    (t) => {
      const session = new FakeSession(t);
      sessions.set(t.name, session);
      return session;
    },
    {
      onStart: (session) => started.push(session.target.name),
      onDone: (result) => done.push(result),
    },
  );
  /** Ends a running host and lets the scheduler react. */
  const end = async (name: string, outcome?: Parameters<FakeSession['end']>[0]): Promise<void> => {
    sessions.get(name)!.end(outcome);
    await sleep(0);
  };
  return { fanout, started, done, end, sessions };
}

test('at most `fanout` hosts are in flight; the next starts as one ends', async (t) => {
  const { fanout, started, end } = fleet(4, { fanout: 2 });
  const run = fanout.run();
  t.deepEqual(started, ['h1', 'h2']);
  t.is(fanout.running.size, 2);
  await end('h2');
  t.deepEqual(started, ['h1', 'h2', 'h3']);
  await end('h1');
  await end('h3');
  await end('h4');
  const results = await run;
  t.deepEqual(
    results.map((r) => r.target.name),
    ['h1', 'h2', 'h3', 'h4'],
    'results in target order, not end order',
  );
});

test('onDone hears each host once, in the order hosts end', async (t) => {
  const { fanout, done, end } = fleet(3, {});
  const run = fanout.run();
  await end('h3');
  await end('h1');
  await end('h2');
  await run;
  t.deepEqual(
    done.map((r) => r.target.name),
    ['h3', 'h1', 'h2'],
  );
});

test('a batch starts when the previous one has finished', async (t) => {
  const { fanout, started, end } = fleet(4, { fanout: 4, batchSize: 2 });
  const run = fanout.run();
  t.deepEqual(started, ['h1', 'h2']);
  await end('h1');
  t.deepEqual(started, ['h1', 'h2'], 'h3 waits for the whole first batch');
  await end('h2');
  await sleep(10); // the next batch starts after --batch-wait, on a timer
  t.deepEqual(started, ['h1', 'h2', 'h3', 'h4']);
  await end('h3');
  await end('h4');
  await run;
});

test('--max-fail: once reached no new host starts; the others are skipped with the reason', async (t) => {
  const { fanout, started, end } = fleet(4, { fanout: 1, maxFail: 1 });
  const run = fanout.run();
  await end('h1', FAILED);
  const results = await run;
  t.deepEqual(started, ['h1']);
  t.deepEqual(
    results.slice(1).map((r) => r.outcome.kind),
    ['skipped', 'skipped', 'skipped'],
  );
  t.regex(failureReason(results[1]!.outcome) ?? '', /--max-fail reached \(1 host not ok\)/);
});

test('stop(): running hosts finish, the rest are skipped as interrupted', async (t) => {
  const { fanout, started, end } = fleet(3, { fanout: 1 });
  const run = fanout.run();
  fanout.stop();
  t.deepEqual(started, ['h1']);
  await end('h1');
  const results = await run;
  t.is(results[0]!.outcome.kind, 'exit');
  t.deepEqual(
    results.slice(1).map((r) => failureReason(r.outcome)),
    ['not started: interrupted', 'not started: interrupted'],
  );
});

test('no hosts: the run resolves at once with no results', async (t) => {
  t.deepEqual(await fleet(0, {}).fanout.run(), []);
});

test('--batch and --max-fail take a count or a percentage of the hosts; the fanout is at most the hosts', (t) => {
  t.deepEqual(scheduleFor({ fanout: 256, batch: '3', maxFail: '25%', batchWait: 2 }, 10), {
    fanout: 10,
    batchSize: 3,
    batchWaitMs: 2000,
    maxFail: 3,
  });
  t.deepEqual(scheduleFor({ fanout: 4 }, 10), { fanout: 4, batchSize: Infinity, batchWaitMs: 0, maxFail: Infinity });
  t.throws(() => scheduleFor({ fanout: 4, batch: '0' }, 10), { message: "--batch takes a whole number N >= 1 or a percentage N% (1-100), got '0'" });
  t.throws(() => scheduleFor({ fanout: 4, maxFail: '101%' }, 10), { message: /--max-fail takes/ });
});
