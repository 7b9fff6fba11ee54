// The two ways the agent starts a command — the native spawn (clone without fork,
// native/spawn.c) and Node's child_process (the fallback, DISTRUNNER_SPAWN=fork) — give
// the command the same process: its own session and process group, only descriptors
// 0-2 open, no signal blocked or ignored, the exact argv, the clean environment, the
// run-as user with its groups, the working directory, and the shell's 127 and 126.
// Every other test runs on the native spawn where it is built; this file runs both.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupAll, distrun, makePki, startAgent, tempDir, type Pki, type RunningAgent } from './helpers/fleet.js';
import { loadNativeSpawn } from '../src/agent/native-spawn.js';

const isRoot = process.getuid?.() === 0;
const nativeBuilt = 'spawn' in loadNativeSpawn();
let pki: Pki;
const agents = new Map<string, RunningAgent>();

test.before(async () => {
  pki = await makePki(['agent1']);
  const config = { runAs: isRoot ? 'nobody' : undefined };
  agents.set('native', await startAgent(pki, 'agent1', { config }));
  agents.set('fork', await startAgent(pki, 'agent1', { config, env: { DISTRUNNER_SPAWN: 'fork' } }));
});
test.after.always(cleanupAll);

/** The command's stdout with the host prefixes taken off. */
async function runOn(mode: string, args: string[], input?: string): Promise<{ out: string; code: number | null }> {
  const agent = agents.get(mode)!;
  const result = await distrun(['-H', `127.0.0.1:${agent.port}`, '--pki', pki.dir, ...args], input === undefined ? {} : { input });
  return { out: String(result.stdout).replace(/^127\.0\.0\.1: /gm, ''), code: result.code };
}

test('the native spawn is built here (npm ci builds it; without a compiler the agent falls back)', (t) => {
  t.true(nativeBuilt, String((loadNativeSpawn() as { unavailable?: string }).unavailable));
  t.truthy(agents.get('native')!.logs.find((l) => l.msg === 'commands are started without forking the agent (native spawn)'));
  t.like(agents.get('fork')!.logs.find((l) => String(l.msg).startsWith('commands are started by forking')) ?? {}, {
    reason: 'DISTRUNNER_SPAWN=fork is set',
  });
});

for (const mode of ['native', 'fork']) {
  test(`${mode}: own session and process group, descriptors 0-2 only, no signal blocked or ignored`, async (t) => {
    // No pipeline: the shell holds nothing but what it was given while ls reads its descriptors.
    const { out, code } = await runOn(mode, ['sh', '-c', 'ls /proc/$$/fd; ps -o pid=,pgid=,sid= -p $$']);
    t.is(code, 0);
    const [fd0, fd1, fd2, ids, ...rest] = out.trim().split('\n');
    t.deepEqual([fd0, fd1, fd2, rest], ['0', '1', '2', []]);
    const [pid, pgid, sid] = ids!.trim().split(/\s+/);
    t.is(pgid, pid);
    t.is(sid, pid);
    // The program's own mask as it was executed (a shell blocks signals around its forks).
    const signals = await runOn(mode, ['grep', '-E', '^Sig(Blk|Ign)', '/proc/self/status']);
    t.is(signals.out, 'SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n');
  });

  test(`${mode}: stdout and stderr are pipes, stdin too (a socketpair from Node's spawn); stdin arrives whole`, async (t) => {
    const input = 'x'.repeat(300_000);
    const { out, code } = await runOn(mode, ['-t', 'sh', '-c', 'wc -c; stat -L -c %F /proc/$$/fd/0 /proc/$$/fd/1 /proc/$$/fd/2']);
    t.is(code, 0);
    t.deepEqual(out.trim().split('\n'), ['0', mode === 'native' ? 'fifo' : 'socket', 'fifo', 'fifo']);
    const piped = await runOn(mode, ['-t', 'wc', '-c'], input);
    t.is(piped.out.trim(), String(input.length));
  });

  test(`${mode}: the exact argv, the clean environment, the run-as user with its groups, the working directory`, async (t) => {
    const argv = await runOn(mode, ['printf', '[%s]', 'a b', '', '*', 'ünï\tcode']);
    t.is(argv.out, '[a b][][*][ünï\tcode]\n');
    // The same environment whichever way the command was started (the pid-free parts of it).
    const env = await runOn(mode, ['--env', 'APP_MODE=x y', 'env']);
    const other = await runOn(mode === 'native' ? 'fork' : 'native', ['--env', 'APP_MODE=x y', 'env']);
    const sorted = (text: string): string[] => text.trim().split('\n').sort();
    t.deepEqual(sorted(env.out), sorted(other.out));
    t.true(env.out.includes('APP_MODE=x y\n'));
    t.false(/^(DISTRUN_ENV|NODE_OPTIONS|DISTRUNNER_SPAWN|RUNTIME_DIRECTORY)/m.test(env.out), env.out);
    const id = await runOn(mode, ['id']);
    const expected = spawnSync('id', isRoot ? ['nobody'] : [], { encoding: 'utf8' }).stdout;
    t.is(id.out, expected);
    const cwd = await runOn(mode, ['--cwd', '/tmp', 'pwd']);
    t.is(cwd.out, '/tmp\n');
  });

  test(`${mode}: a missing program is 127, one that is not executable 126, each with the shell's words`, async (t) => {
    const missing = await runOn(mode, ['distrun-no-such-program']);
    t.is(missing.code, 127);
    const dir = tempDir();
    chmodSync(dir, 0o755);
    const script = join(dir, 'not-executable');
    writeFileSync(script, 'echo never\n', { mode: 0o644 });
    const notExecutable = await runOn(mode, [script]);
    t.is(notExecutable.code, 126);
    t.is(notExecutable.out, '');
  });
}
