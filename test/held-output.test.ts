// A command that exits while a background child keeps its output open
// (`sh -c 'daemon & echo started'`): distrun waits for the output to end, as ssh does,
// and says why — the agent's HLD message (protocol 4), shown on the progress line, in
// the summary and as a --json event. --timeout still ends it. Real agents on loopback.
import test from 'ava';
import { spawn } from 'node:child_process';
import { AgentToken } from '../src/protocol/constants.js';
import { decodeExit, decodeHeld, defaultSessionOptions, encodeCommand, encodeOptions, encodeVersionOffer } from '../src/protocol/messages.js';
import {
  DISTRUN,
  cleanupAll,
  distrun,
  loopbackFleet,
  processesMatching,
  RUN_TOKEN,
  rawExchange,
  distrunEnv,
  waitFor,
  type Pki,
  type RunningAgent,
} from './helpers/fleet.js';

let pki: Pki;
let agent: RunningAgent;
let inventory: string;

test.before(async () => {
  ({ pki, agent, inventory } = await loopbackFleet((port) => `hosts:\n  web1: {address: 127.0.0.1, port: ${port}}\n`));
});
test.after.always(cleanupAll);

// (The sleep's argument is computed, so that distrun's own command line does not match.)
const heldBy = (n: number) => ['sh', '-c', `sleep $((900 + ${n})).${RUN_TOKEN} & echo started`];
const holder = (n: number) => `sleep ${900 + n}.${RUN_TOKEN}`;
const NOTE = 'command exited with code 0, output held open by a background process';

test('--json: a held event when the command exits with its output held open; --timeout ends it, and the summary says why', async (t) => {
  const r = await distrun(['-i', inventory, '--pki', pki.dir, '-H', 'web1', '--json', '--timeout', '3', ...heldBy(41)]);
  t.is(r.code, 124, r.stderr);
  const events = r.stdout
    .toString()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  t.deepEqual(
    events.map((e) => e.type),
    ['start', 'stdout', 'held', 'timeout', 'summary'],
  );
  t.like(events[2], { v: 1, type: 'held', host: 'web1', code: 0, signal: null });
  t.like(events[3], { type: 'timeout', status: 'timeout', exitCode: 124 });
  t.true(r.stderr.split('\n').includes(`  timed out (command killed) (${NOTE}): web1`), r.stderr);
  // The time limit ended what held the output.
  t.true(await waitFor(() => processesMatching(holder(41)).length === 0), processesMatching(holder(41)).join('; '));
  t.truthy(agent.logs.find((l) => l.msg === 'command exited; its output is held open by processes it left behind' && l.code === 0));
});

test('on a terminal the progress line says the command exited and its output is held open; the run ends when the output does', async (t) => {
  const quote = (a: string) => `'${a.replace(/'/g, `'\\''`)}'`;
  const line = [process.execPath, DISTRUN, '-i', inventory, '--pki', pki.dir, '-H', 'web1', ...heldBy(42)].map(quote).join(' ');
  const child = spawn('script', ['-qec', line, '/dev/null'], {
    env: distrunEnv({ NO_COLOR: '1' }),
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let screen = '';
  child.stdout.on('data', (c: Buffer) => {
    screen += c.toString('utf8');
  });
  const closed = new Promise<number | null>((resolve) => child.on('close', (status) => resolve(status)));
  // First on the line, so that an 80-column terminal shows all of it.
  t.true(await waitFor(() => screen.includes(`\x1b[Kweb1: ${NOTE}`), 20_000), JSON.stringify(screen));
  // The background process lets go of the output: the run ends, ok.
  for (const ps of processesMatching(holder(42))) process.kill(Number(ps.trim().split(/\s+/)[0]), 'SIGTERM');
  t.is(await closed, 0, JSON.stringify(screen));
  child.stdin.destroy();
  t.true(screen.includes('web1: started'), JSON.stringify(screen));
});

test('protocol: HLD goes to clients of version 4 only, before EXT; an older client waits as before', async (t) => {
  const exchange = (versions: number[], n: number) =>
    rawExchange(agent.port, pki.dir, [
      encodeVersionOffer({ versions, software: 'test' }),
      ...encodeOptions({ ...defaultSessionOptions(), timeoutMs: 2000 }),
      encodeCommand(heldBy(n)),
    ]);
  const current = await exchange([1, 2, 3, 4], 43);
  const tokens = current.map((f) => f.token).filter((token) => token !== AgentToken.KEEPALIVE);
  t.deepEqual(tokens, ['VER', 'OUT', 'HLD', 'EXT']);
  t.deepEqual(decodeHeld(current.find((f) => f.token === 'HLD')!.payload), { code: 0 });
  t.like(decodeExit(current.find((f) => f.token === 'EXT')!.payload), { code: 0, timedOut: true });
  const older = await exchange([1, 2, 3], 44);
  t.deepEqual(
    older.map((f) => f.token).filter((token) => token !== AgentToken.KEEPALIVE),
    ['VER', 'OUT', 'EXT'],
  );
  t.true(await waitFor(() => processesMatching(holder(43)).length === 0 && processesMatching(holder(44)).length === 0));
});
