// The state of each host along a chain of reruns (run-chain.ts), what rerun selects from
// it, and records of both versions read back. Pure, no agents.
import test from 'ava';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FileError } from '../src/errors.js';
import { resolveChain } from '../src/cli/output/run-chain.js';
import { listRuns, loadRunById, saveRun, type HostRecord, type RunRecord } from '../src/cli/output/run-record.js';
import { rerunSelection } from '../src/cli/output/run-chain.js';
import type { OutcomeClass } from '../src/cli/execution/outcome.js';
import { cleanupAll, tempDir } from './helpers/fleet.js';

test.after.always(cleanupAll);

const host = (name: string, status: OutcomeClass): HostRecord => ({
  name,
  address: '127.0.0.1',
  port: 6789,
  status,
  exitCode: status === 'ok' ? 0 : 1,
  reason: null,
  durationMs: 1,
  bytesOut: 0,
  bytesErr: 0,
  stdoutSha256: null,
  stderrSha256: null,
});
let n = 0;
const record = (hosts: HostRecord[], parent?: string, id = `20260101T00000000${n++}Z-0000`): RunRecord => ({
  version: 2,
  id,
  parent,
  startedAt: '2026-01-01T00:00:00.000Z',
  endedAt: '2026-01-01T00:00:01.000Z',
  command: ['true'],
  shell: false,
  stdin: false,
  stderr: true,
  timeout: undefined,
  exitCode: 1,
  hosts,
});
const loaderOf =
  (...records: RunRecord[]) =>
  (id: string): RunRecord => {
    const found = records.find((r) => r.id === id);
    if (!found) throw new FileError(`there is no record ${id}`);
    return found;
  };
const names = (chain: ReturnType<typeof resolveChain>) => chain.states.map((s) => `${s.host.name}=${s.host.status}@${s.runId}`);

test('a run that is no rerun is its own chain', (t) => {
  const root = record([host('a', 'ok'), host('b', 'failed')]);
  const chain = resolveChain(root, loaderOf());
  t.deepEqual(chain.runs, [root]);
  t.deepEqual(names(chain), [`a=ok@${root.id}`, `b=failed@${root.id}`]);
});

test('each host of the first selection takes its result in the newest run that included it', (t) => {
  const root = record([host('a', 'ok'), host('b', 'failed'), host('c', 'unreachable'), host('d', 'failed')]);
  const failed = record([host('b', 'ok'), host('d', 'timeout')], root.id);
  const again = record([host('d', 'ok')], failed.id);
  const chain = resolveChain(again, loaderOf(root, failed));
  t.deepEqual(
    chain.runs.map((r) => r.id),
    [again.id, failed.id, root.id],
  );
  t.deepEqual(names(chain), [`a=ok@${root.id}`, `b=ok@${failed.id}`, `c=unreachable@${root.id}`, `d=ok@${again.id}`]);
  // --unreachable after two --failed still finds c; --failed finds nothing left.
  t.deepEqual(
    rerunSelection(chain, { unreachable: true }).targets?.map((h) => h.name),
    ['c'],
  );
  t.is(rerunSelection(chain, { failed: true }).nothing, 'nothing to run again: no host is failed, timeout (3 ok, 1 unreachable)');
  t.deepEqual(
    rerunSelection(chain, { failed: true, unreachable: true }).targets?.map((h) => h.name),
    ['c'],
  );
  t.throws(() => rerunSelection(chain, {}), { message: /say which hosts/ });
});

test('when every host has succeeded along the chain, there is nothing to run again', (t) => {
  const root = record([host('a', 'ok'), host('b', 'unreachable')]);
  const fixed = record([host('b', 'ok')], root.id);
  t.is(
    rerunSelection(resolveChain(fixed, loaderOf(root)), { failed: true, unreachable: true }).nothing,
    'nothing to run again: all 2 hosts succeeded',
  );
});

test('a missing or unreadable parent is an error naming both runs, never a smaller set of hosts', (t) => {
  const root = record([host('a', 'failed'), host('b', 'unreachable')]);
  const failed = record([host('a', 'failed')], root.id);
  const missing = t.throws(() => resolveChain(failed, loaderOf()), { instanceOf: FileError });
  t.is(missing.code, 'E_FILE');
  t.regex(
    missing.message,
    new RegExp(
      `^run ${failed.id} ran again the hosts of ${root.id}, whose record cannot be used \\(there is no record ${root.id}\\); .*rerun will not guess`,
    ),
  );
  // A record that lies about its id is no link either.
  const liar = { ...root, id: 'something-else' };
  t.throws(() => resolveChain(failed, () => liar), { instanceOf: FileError, message: /calls itself something-else/ });
  // A loader's own bug is not turned into a chain error.
  t.throws(
    () =>
      resolveChain(failed, () => {
        throw new TypeError('bug');
      }),
    { instanceOf: TypeError },
  );
});

test('a cycle of parents, or a rerun of a host its root never had, is refused', (t) => {
  const a = record([host('a', 'failed')], 'B', 'A');
  const b = record([host('a', 'failed')], 'A', 'B');
  t.throws(() => resolveChain(a, loaderOf(a, b)), { instanceOf: FileError, message: /run records A, B name each other .* \(a cycle\)/ });
  const self = record([host('a', 'failed')], 'S', 'S');
  t.throws(() => resolveChain(self, loaderOf(self)), { message: /a cycle/ });
  const root = record([host('a', 'failed')]);
  const stranger = record([host('z', 'failed')], root.id);
  t.throws(() => resolveChain(stranger, loaderOf(root)), { message: /ran z \(127\.0\.0\.1:6789\), which run .* it came from never had/ });
});

test('records are written as version 3 with their parent; version 1 records are still read; newer ones are refused', (t) => {
  const dir = join(tempDir(), 'runs');
  const v2 = { ...record([host('a', 'ok')], '20250101T000000000Z-aaaa', '20260101T000000000Z-bbbb') };
  saveRun(v2, dir);
  t.deepEqual(loadRunById(v2.id, dir), JSON.parse(JSON.stringify(v2)));
  const { version: _v, parent: _p, ...v1 } = record([host('a', 'failed')], undefined, '20250101T000000000Z-aaaa');
  writeFileSync(join(dir, `${v1.id}.json`), JSON.stringify(v1), { mode: 0o600 });
  const old = loadRunById(v1.id, dir);
  t.is(old.version, undefined);
  t.is(old.parent, undefined);
  t.deepEqual(names(resolveChain(loadRunById(v2.id, dir), (id) => loadRunById(id, dir))), [`a=ok@${v2.id}`]);
  const future = { ...record([], undefined, '20270101T000000000Z-cccc'), version: 99 };
  writeFileSync(join(dir, `${future.id}.json`), JSON.stringify(future), { mode: 0o600 });
  t.throws(() => loadRunById(future.id, dir), { message: /written by a newer distrun \(record version 99/ });
  t.deepEqual(
    listRuns(10, dir).skipped.map((s) => s.id),
    [future.id],
  );
  t.throws(() => loadRunById('20200101T000000000Z-dddd', dir), {
    instanceOf: FileError,
    message: /no record .* any more \(distrun keeps the last 100 runs\)/,
  });
});
