// What a client can make the agent hold, and what the agent lets go of: memory before a
// command runs, the command's pipes and descriptors after a client vanished, slots of
// finished sessions held half-open, a protocol-1 client gone behind its own input, long
// time limits, error events on the command's streams, and process groups that are no
// longer ours when the orphan reaper acts.
import test from 'ava';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { CommandProcess } from '../src/agent/command-process.js';
import { agentUser } from '../src/agent/local-users.js';
import { OrphanReaper } from '../src/agent/orphan-reaper.js';
import { PipePool } from '../src/agent/pipe-pool.js';
import { ProcessGroup } from '../src/agent/process-group.js';
import { FrameDecoder, type Frame } from '../src/protocol/frame-decoder.js';
import { encodeCommand, encodeFrame, encodeVersionOffer } from '../src/protocol/messages.js';
import {
  cleanupAll,
  connectRaw,
  distrun,
  failureIn,
  makePki,
  processesMatching,
  RUN_TOKEN,
  rawExchange,
  residentBytes,
  startAgent,
  tempDir,
  waitFor,
  type Pki,
  type RunningAgent,
} from './helpers/fleet.js';
import { assertStillServing } from './helpers/serving.js';
import { jsonLines } from './helpers/json-lines.js';

const isRoot = process.getuid?.() === 0;
let pki: Pki;

test.before(async () => {
  pki = await makePki(['agent1']);
});
test.after.always(cleanupAll);

const hello = (version = 3) => encodeVersionOffer({ versions: [version], software: 'attacker' });
const openDescriptors = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;
const auditOf = (file: string) => jsonLines(readFileSync(file, 'utf8'));
const unique = () => `${RUN_TOKEN}${Math.floor(Math.random() * 1e6)}`;

/** Sessions that announce large OPT frames and never send CMD. */
async function optionFlood(agent: RunningAgent, sessions: number, framesEach: number, valueBytes: number): Promise<number> {
  let peak = residentBytes(agent.process.pid!);
  const sample = setInterval(() => {
    peak = Math.max(peak, residentBytes(agent.process.pid!));
  }, 20);
  const option = encodeFrame('OPT', `env=A=${'x'.repeat(valueBytes)}`);
  await Promise.all(
    Array.from(
      { length: sessions },
      () =>
        new Promise<void>((resolve) => {
          const socket = connectRaw(agent.port, pki.dir);
          socket.on('error', () => {});
          socket.on('close', () => resolve());
          socket.once('secureConnect', () => {
            socket.write(hello());
            for (let i = 0; i < framesEach; i++) socket.write(option);
          });
          socket.resume();
        }),
    ),
  );
  clearInterval(sample);
  return Math.max(peak, residentBytes(agent.process.pid!));
}

// Serial: its 4 GiB of attempted writes load this worker; the other tests here wait for processes.
test.serial("a flood of large options before CMD is refused at the frame header: the agent's memory stays bounded", async (t) => {
  const agent = await startAgent(pki, 'agent1', {});
  const before = residentBytes(agent.process.pid!);
  // 64 sessions x 64 options of 1 MiB: 4 GiB if the agent held what it was sent.
  const peak = await optionFlood(agent, 64, 64, 1024 * 1024 - 16);
  t.log(`RSS ${Math.round(before / 2 ** 20)} MB before, ${Math.round(peak / 2 ** 20)} MB at most during the flood`);
  t.true(peak < before + 150 * 2 ** 20, `RSS peaked at ${peak}`);
  const refused = failureIn(await rawExchange(agent.port, pki.dir, [hello(), encodeFrame('OPT', `env=A=${'x'.repeat(70_000)}`)]));
  t.is(refused?.code, 'E_LIMIT');
  t.regex(refused?.reason ?? '', /options of more than 65536 bytes in all exceed the agent's limit \(maxOptionBytes\)/);
  const many = failureIn(await rawExchange(agent.port, pki.dir, [hello(), ...Array.from({ length: 300 }, () => encodeFrame('OPT', 'stderr'))]));
  t.regex(many?.reason ?? '', /more than 256 options/);
  t.is(agent.process.exitCode, null);
  await assertStillServing(t, agent, pki.dir);
});

/** Frames a raw session has received so far, decoded as they arrive. */
function framesOf(socket: tls.TLSSocket): () => Frame[] {
  const decoder = new FrameDecoder();
  const frames: Frame[] = [];
  socket.on('data', (c: Buffer) => frames.push(...decoder.push(c)));
  return () => frames;
}

test('what all sessions together hold before their commands is bounded agent-wide (maxPendingBytes)', async (t) => {
  const budget = 1024 * 1024;
  const agent = await startAgent(pki, 'agent1', { config: { maxPendingBytes: budget, setupTimeoutSeconds: 60 } });
  await assertStillServing(t, agent, pki.dir);
  const baseline = openDescriptors(agent.process.pid!);
  // Sessions within their own limit that each keep one option of 60 KiB and wait.
  const option = encodeFrame('OPT', `env=A=${'x'.repeat(60_000)}`);
  const sessions = 40;
  const fitting = Math.floor(budget / (option.length - 7));
  const holders = Array.from({ length: sessions }, () => {
    const socket = connectRaw(agent.port, pki.dir);
    socket.on('error', () => {});
    const frames = framesOf(socket);
    socket.once('secureConnect', () => socket.write(Buffer.concat([hello(), option])));
    return { socket, failure: () => failureIn(frames()) };
  });
  const refused = () => holders.filter((h) => h.failure()).length;
  t.true(await waitFor(() => refused() === sessions - fitting, 30_000), `${refused()} sessions refused`);
  for (const h of holders.filter((h) => h.failure())) {
    t.deepEqual(h.failure(), { code: 'E_BUSY', reason: 'the agent is short of memory for new sessions; try again later' });
  }
  // What a session held is given back when it goes: the budget is whole again.
  for (const h of holders) h.socket.destroy();
  t.true(await waitFor(() => openDescriptors(agent.process.pid!) <= baseline, 15_000));
  const again = await Promise.all(
    Array.from({ length: fitting }, () => rawExchange(agent.port, pki.dir, [hello(), option, encodeCommand(['true'])])),
  );
  t.deepEqual(
    again.map((frames) => failureIn(frames)?.code ?? frames.some((f) => f.token === 'EXT')),
    Array(fitting).fill(true),
  );
  await assertStillServing(t, agent, pki.dir);
});

/** The pid of the one process whose command line ends with `marker`. */
function pidOf(marker: string): number | undefined {
  const line = processesMatching(marker).find((l) => l.trim().endsWith(marker));
  return line ? Number(line.trim().split(/\s+/)[0]) : undefined;
}
/** The process is asleep in write(2) (x86_64: 1, arm64: 64): its reader has stopped reading. */
const blockedOnPipe = (pid: number) => {
  try {
    return /^(1|64) /.test(readFileSync(`/proc/${pid}/syscall`, 'utf8')) && processState(pid) === 'S';
  } catch {
    return false;
  }
};

/** Starts `yes MARKER` in a session, lets its output back up to the command's pipe, then vanishes. */
async function vanishBehindOutput(agent: RunningAgent, marker: string): Promise<number> {
  const socket = connectRaw(agent.port, pki.dir);
  socket.on('error', () => {});
  await new Promise<void>((resolve) => socket.once('secureConnect', () => resolve()));
  socket.write(Buffer.concat([hello(), encodeCommand(['yes', marker])]));
  await new Promise<void>((resolve) => socket.once('data', () => resolve()));
  socket.pause();
  let pid: number | undefined;
  await waitFor(() => (pid ??= pidOf(marker)) !== undefined && blockedOnPipe(pid), 15_000);
  socket.destroy();
  return pid ?? 0;
}

test('a reader that vanishes while its output is backed up: every command ends, is audited, and its descriptors are freed', async (t) => {
  const audit = join(tempDir(), 'audit.jsonl');
  const agent = await startAgent(pki, 'agent1', { config: { auditLog: audit, killGraceSeconds: 1 } });
  await assertStillServing(t, agent, pki.dir);
  const baseline = openDescriptors(agent.process.pid!);
  const marker = `backed-up-${unique()}`;
  const readers = 20;
  for (let i = 0; i < readers; i++) t.true((await vanishBehindOutput(agent, `${marker}-${i}`)) > 0);
  const ended = () => auditOf(audit).filter((a) => a.event === 'end' && String(a.argv?.[1]).startsWith(marker)).length;
  t.true(await waitFor(() => ended() === readers, 30_000), `${ended()} of ${readers} commands have an end record`);
  t.true(await waitFor(() => processesMatching(marker).length === 0, 10_000), 'no command is left running');
  t.true(
    await waitFor(() => openDescriptors(agent.process.pid!) <= baseline, 15_000),
    `descriptors: ${openDescriptors(agent.process.pid!)} now, ${baseline} before`,
  );
  await assertStillServing(t, agent, pki.dir);
});

/** A process with exactly this pid, made its own group's leader: the stranger a stale group id would now name. */
async function strangerWithPid(pid: number): Promise<ChildProcess | undefined> {
  for (let attempt = 0; attempt < 50; attempt++) {
    writeFileSync('/proc/sys/kernel/ns_last_pid', String(pid - 1));
    const child = spawn('sleep', ['1000'], { detached: true, stdio: 'ignore' });
    if (child.pid === pid) return child;
    child.kill('SIGKILL');
    if (processEntryExists(pid)) return undefined; // taken by someone else
  }
  return undefined;
}
/** The state letter of a process (R, S, Z...), undefined when there is none. */
function processState(pid: number): string | undefined {
  try {
    return /^\d+ \(.*\) (\S)/s.exec(readFileSync(`/proc/${pid}/stat`, 'latin1'))?.[1];
  } catch {
    return undefined;
  }
}
/** A live process has this pid (a zombie, ended but not yet reaped by its parent, is none). */
const processEntryExists = (pid: number) => {
  const state = processState(pid);
  return state !== undefined && state !== 'Z';
};
const alive = (child: ChildProcess) => child.exitCode === null && child.signalCode === null && processEntryExists(child.pid!);

/** The agent's orphan reaper: its child running the helper script. */
function reaperOf(agentPid: number): number | undefined {
  const ps = spawnSync('ps', ['-eo', 'pid=,ppid=,args='], { encoding: 'utf8' });
  const line = ps.stdout.split('\n').find((l) => {
    const [, ppid] = l.trim().split(/\s+/);
    return Number(ppid) === agentPid && l.includes('grace=$1');
  });
  return line ? Number(line.trim().split(/\s+/)[0]) : undefined;
}

(isRoot ? test : test.skip)('the orphan reaper never signals a group whose command has ended, even when its id was given to another', async (t) => {
  const audit = join(tempDir(), 'audit.jsonl');
  const agent = await startAgent(pki, 'agent1', { config: { auditLog: audit, killGraceSeconds: 1 } });
  // The case: a reader that vanished while `yes` filled its pipe.
  const marker = `stale-${unique()}`;
  const command = await vanishBehindOutput(agent, marker);
  t.true(command > 0);
  t.true(await waitFor(() => auditOf(audit).some((a) => a.event === 'end'), 20_000), 'the command ended');
  t.true(await waitFor(() => !processEntryExists(command), 10_000), 'the command is gone');
  const stranger = await strangerWithPid(command);
  if (!stranger) {
    t.log(`could not give pid ${command} to a stranger (taken meanwhile): nothing to check`);
    t.pass();
    return;
  }
  t.teardown(() => stranger.kill('SIGKILL'));
  const reaper = reaperOf(agent.process.pid!);
  t.truthy(reaper, 'the agent has its reaper');
  await agent.stop('SIGKILL');
  // The reaper acts when the agent's death ends its input, and exits when it is done.
  t.true(await waitFor(() => !processEntryExists(reaper!), 20_000), 'the reaper has finished');
  t.true(alive(stranger), 'the process that got the old group id was not signalled');
});

(isRoot ? test : test.skip)('the reaper helper: a stale group is left alone, a live one of ours is stopped', async (t) => {
  const reaper = new OrphanReaper(1, (reason) => t.fail(reason));
  // One of ours that stays, and one that ends while the reaper still lists it.
  const ours = spawn('sleep', ['1000'], { detached: true, stdio: 'ignore' });
  const gone = spawn('sleep', ['1000'], { detached: true, stdio: 'ignore' });
  await Promise.all([ours, gone].map((c) => new Promise((r) => c.once('spawn', r))));
  const oursGroup = new ProcessGroup(ours.pid!);
  const goneGroup = new ProcessGroup(gone.pid!);
  reaper.watch(oursGroup);
  reaper.watch(goneGroup);
  gone.kill('SIGKILL');
  await new Promise((r) => gone.once('exit', r));
  t.false(goneGroup.isOurs());
  const stranger = await strangerWithPid(gone.pid!);
  t.teardown(() => {
    stranger?.kill('SIGKILL');
    ours.kill('SIGKILL');
  });
  t.false(goneGroup.signal('SIGTERM'), 'the agent itself does not signal it either');
  reaper.close(); // end of input: what the helper sees when the agent dies
  t.true(await waitFor(() => ours.exitCode !== null || ours.signalCode !== null, 10_000), 'our group was stopped');
  if (stranger) t.true(alive(stranger), 'the stranger with the stale id was not');
  else t.log('could not give the stale pid to a stranger: checked our group only');
});

test('sessions that ended and are held half-open by their peer free their slot at once and are closed soon after', async (t) => {
  const agent = await startAgent(pki, 'agent1', { config: { maxSessions: 4, maxSessionsPerClient: 4 } });
  await assertStillServing(t, agent, pki.dir);
  const baseline = openDescriptors(agent.process.pid!);
  const ca = readFileSync(join(pki.dir, 'ca.crt'));
  const holders = await Promise.all(
    Array.from(
      { length: 4 },
      () =>
        new Promise<tls.TLSSocket>((resolve) => {
          // tls.connect passes allowHalfOpen to its socket; @types/node does not list it.
          const socket = tls.connect({
            host: '127.0.0.1',
            port: agent.port,
            ca,
            cert: readFileSync(join(pki.dir, 'client.crt')),
            key: readFileSync(join(pki.dir, 'client.key')),
            allowHalfOpen: true,
          } as tls.ConnectionOptions);
          socket.on('error', () => {});
          // A protocol violation: the agent answers FAI and ends its side; this peer never closes.
          socket.once('secureConnect', () => socket.write(Buffer.concat([hello(), encodeFrame('ZZZ')])));
          socket.once('end', () => resolve(socket));
          socket.resume();
        }),
    ),
  );
  t.teardown(() => holders.forEach((s) => s.destroy()));
  await assertStillServing(t, agent, pki.dir);
  t.true(
    await waitFor(() => openDescriptors(agent.process.pid!) <= baseline, 30_000),
    `the held connections are closed by the agent (${openDescriptors(agent.process.pid!)} descriptors, ${baseline} before)`,
  );
});

test('protocol 1: a client that leaves while its input is backed up still ends its command', async (t) => {
  const agent = await startAgent(pki, 'agent1', { config: { keepaliveSeconds: 1, killGraceSeconds: 1 } });
  const marker = `sleep 3${unique()}`;
  const socket = connectRaw(agent.port, pki.dir);
  socket.on('error', () => {});
  const frames = framesOf(socket);
  await new Promise<void>((resolve) => socket.once('secureConnect', () => resolve()));
  socket.write(Buffer.concat([hello(1), encodeFrame('OPT', 'stdin'), encodeCommand(['sh', '-c', marker])]));
  t.true(await waitFor(() => processesMatching(marker).length > 0));
  // The command never reads: the input fills its pipe and the agent stops reading. The
  // client's close (a FIN) then waits behind the input the agent has not read.
  const chunk = encodeFrame('INP', Buffer.alloc(64 * 1024, 0x61));
  for (let i = 0; i < 512; i++) socket.write(chunk);
  // Protocol 1 has no keepalives: while reading is paused the agent probes with empty
  // output frames. The first one shows that it has stopped reading (an agent without
  // probes has, too, after this long).
  const probed = await waitFor(() => frames().some((f) => f.token === 'OUT' && f.payload.length === 0), 15_000);
  t.log(probed ? 'probed by the agent' : 'no probe from the agent');
  socket.destroy();
  t.true(await waitFor(() => processesMatching(marker).length === 0, 30_000), 'the command was stopped');
  await assertStillServing(t, agent, pki.dir);
});

test("time limits beyond 24.8 days (setTimeout's range) do not fire at once", async (t) => {
  const agent = await startAgent(pki, 'agent1', { config: { maxCommandSeconds: 30 * 24 * 3600 } });
  const r = await distrun(['-H', `127.0.0.1:${agent.port}`, '--pki', pki.dir, '--timeout', '2200000', '--', 'sh', '-c', 'sleep 0.5; echo done']);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout.toString(), '127.0.0.1: done\n');
  t.false(agent.rawLog().includes('TimeoutOverflowWarning'));
});

test("error events on a command's streams and on the agent's helpers are handled: nothing crashes, the command still ends", async (t) => {
  const user = agentUser();
  const broken: string[] = [];
  const pipes = new PipePool(8, (reason) => broken.push(`pipes: ${reason}`));
  await pipes.firstBatch;
  const reaper = new OrphanReaper(1, (reason) => broken.push(`reaper: ${reason}`));
  t.teardown(() => {
    pipes.close();
    reaper.close();
  });
  for (const pool of [pipes, undefined]) {
    const command = new CommandProcess({
      argv: ['sh', '-c', 'yes | head -c 100000000'],
      shell: false,
      stdin: true,
      stderr: true,
      timeoutMs: 0,
      killGraceMs: 500,
      user,
      switchUser: false,
      clientName: 'test',
      pipes: pool,
      reaper,
    });
    const exited = new Promise((resolve) => command.once('exit', resolve));
    await new Promise((resolve) => command.stdout.once('data', resolve));
    const reset = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
    command.stdout.destroy(reset);
    command.stderr!.destroy(reset);
    command.stdin!.destroy(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
    command.stop();
    t.truthy(await exited);
  }
  // The helpers' own pipes: an error there marks the helper broken, it does not crash the agent.
  (pipes as unknown as { helper: ChildProcess }).helper.stdin!.destroy(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
  (reaper as unknown as { helper: ChildProcess }).helper.stdin!.destroy(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
  t.true(await waitFor(() => broken.length === 2, 10_000), broken.join('; '));
});

for (const spawn of ['fork', 'native']) {
  test(`under a low open-files limit the agent keeps room to listen and serve (${spawn} spawn${spawn === 'fork' ? ': its pipe pool' : ''})`, async (t) => {
    // 64 pipes made at once would be all of 128 descriptors.
    const agent = await startAgent(pki, 'agent1', {
      prefix: ['prlimit', '--nofile=128', '--'],
      env: spawn === 'fork' ? { DISTRUNNER_SPAWN: 'fork' } : {},
    });
    t.true(openDescriptors(agent.process.pid!) < 64);
    await assertStillServing(t, agent, pki.dir);
  });
}
