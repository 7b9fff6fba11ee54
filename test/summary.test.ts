import test from 'ava';
import { classify, type HostOutcome, type HostResult } from '../src/cli/execution/outcome.js';
import { formatSummary } from '../src/cli/output/summary.js';

const result = (name: string, outcome: HostOutcome): HostResult => ({
  target: { name, address: name, port: 6789 },
  outcome,
  durationMs: 1,
  agentSoftware: undefined,
  protocolVersion: undefined,
});
const ok: HostOutcome = { kind: 'exit', code: 0, timedOut: false };
const exit3: HostOutcome = { kind: 'exit', code: 3, timedOut: false };

test('outcomes fall into ok, failed, timeout, unreachable and error', (t) => {
  t.is(classify(ok), 'ok');
  t.is(classify(exit3), 'failed');
  t.is(classify({ kind: 'exit', signal: 'SIGKILL', timedOut: false }), 'failed');
  t.is(classify({ kind: 'exit', signal: 'SIGTERM', timedOut: true }), 'timeout');
  t.is(classify({ kind: 'error', code: 'E_SPAWN', message: 'x: command not found', exitCode: 127 }), 'failed');
  t.is(classify({ kind: 'error', code: 'E_CONNECT', message: 'connection refused' }), 'unreachable');
  t.is(classify({ kind: 'error', code: 'E_TLS', message: 'bad cert' }), 'error');
});

test('the summary counts each class and folds the hosts of each reason', (t) => {
  const results = [
    result('web01', ok),
    result('web02', exit3),
    result('web03', exit3),
    result('web05', exit3),
    result('web04', { kind: 'error', code: 'E_CONNECT', message: 'connection refused' }),
    result('web06', { kind: 'exit', signal: 'SIGTERM', timedOut: true }),
  ];
  t.is(
    formatSummary(results),
    [
      'distrun: 6 hosts: 1 ok, 3 failed, 1 timed out, 1 unreachable',
      '  exit code 3: web[02-03,05]',
      '  timed out (command killed): web06',
      '  connection refused: web04',
      '',
    ].join('\n'),
  );
  t.is(formatSummary([result('a1', ok), result('a2', ok)]), undefined, 'silent when everything is ok');
});

test('a host whose command exited while a background process held its output open says so in its reason', (t) => {
  const held = { ...result('web1', { kind: 'exit', code: 0, timedOut: true }), leaderExit: { code: 0 } };
  const killed = { ...result('web2', { kind: 'exit', signal: 'SIGTERM', timedOut: true }), leaderExit: { signal: 'SIGHUP' } };
  t.is(
    formatSummary([held, killed]),
    [
      'distrun: 2 hosts: 2 timed out',
      '  timed out (command killed) (command exited with code 0, output held open by a background process): web1',
      '  timed out (command killed) (command exited by SIGHUP, output held open by a background process): web2',
      '',
    ].join('\n'),
  );
});
