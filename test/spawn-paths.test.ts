// The two ways the agent starts a command — the native spawn (clone without fork,
// native/spawn.c) and Node's child_process (the fallback, DISTRUNNER_SPAWN=fork) — give
// the command the same process: its own session and process group, only descriptors
// 0-2 open, no signal blocked or ignored, the exact argv, the clean environment, the
// run-as user with its groups, the working directory, and the shell's 127 and 126.
// Every other test runs on the native spawn where it is built; this file runs both.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { addCleanup, cleanupAll, distrun, makePki, RUN_TOKEN, startAgent, tempDir, type Pki, type RunningAgent } from './helpers/fleet.js';
import { loadNativeSpawn } from '../src/agent/native-spawn.js';

const isRoot = process.getuid?.() === 0;
const nativeBuilt = 'spawn' in loadNativeSpawn();
let pki: Pki;
const agents = new Map<string, RunningAgent>();

// A user of this test's own with two supplementary groups (as root): the groups a command
// gets are the user's from NSS, as initgroups(3) gives them, not only its primary group.
const member = `drt${RUN_TOKEN}`;
const groups = [`drg${RUN_TOKEN}a`, `drg${RUN_TOKEN}b`];

test.before(async () => {
  pki = await makePki(['agent1']);
  const config = { runAs: isRoot ? 'nobody' : undefined };
  agents.set('native', await startAgent(pki, 'agent1', { config }));
  agents.set('fork', await startAgent(pki, 'agent1', { config, env: { DISTRUNNER_SPAWN: 'fork' } }));
  if (isRoot) {
    addCleanup(() => {
      spawnSync('userdel', [member]);
      for (const group of groups) spawnSync('groupdel', [group]);
    });
    for (const group of groups) mustSucceed(spawnSync('groupadd', [group]));
    mustSucceed(spawnSync('useradd', ['--no-create-home', '--home-dir', '/nonexistent', '--groups', groups.join(','), member]));
    const memberConfig = { runAs: member };
    agents.set('native-member', await startAgent(pki, 'agent1', { config: memberConfig }));
    agents.set('fork-member', await startAgent(pki, 'agent1', { config: memberConfig, env: { DISTRUNNER_SPAWN: 'fork' } }));
  }
});
test.after.always(cleanupAll);

function mustSucceed(result: ReturnType<typeof spawnSync>): void {
  if (result.status !== 0) throw new Error(`${String(result.stderr)}`);
}

/** The command's stdout with the host prefixes taken off. */
async function runOn(mode: string, args: string[], input?: string): Promise<{ out: string; err: string; code: number | null }> {
  const agent = agents.get(mode)!;
  const result = await distrun(['-H', `127.0.0.1:${agent.port}`, '--pki', pki.dir, ...args], input === undefined ? {} : { input });
  const unprefixed = (text: string | Buffer): string => String(text).replace(/^127\.0\.0\.1: /gm, '');
  return { out: unprefixed(result.stdout), err: unprefixed(result.stderr), code: result.code };
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
    t.regex(missing.err, /distrun-no-such-program: command not found/);
    const dir = tempDir();
    chmodSync(dir, 0o755);
    const script = join(dir, 'not-executable');
    writeFileSync(script, 'echo never\n', { mode: 0o644 });
    const notExecutable = await runOn(mode, [script]);
    t.is(notExecutable.code, 126);
    t.is(notExecutable.out, '');
    t.regex(notExecutable.err, /not-executable: permission denied or not executable/);
    // A directory is not a program either; a #! naming a missing interpreter is "not found".
    t.is((await runOn(mode, [dir])).code, 126);
    const orphanScript = join(dir, 'bad-interpreter');
    writeFileSync(orphanScript, '#!/nonexistent/interpreter\necho never\n', { mode: 0o755 });
    const badInterpreter = await runOn(mode, [orphanScript]);
    t.is(badInterpreter.code, 127);
    t.is(badInterpreter.out, '');
  });

  test(`${mode}: a script without #! runs with /bin/sh; PWD is where the command is, links resolved, whatever the client sent`, async (t) => {
    const dir = tempDir();
    chmodSync(dir, 0o755);
    const script = join(dir, 'no-shebang');
    writeFileSync(script, 'echo "ran with $# arguments: $1"\n', { mode: 0o755 });
    const plain = await runOn(mode, [script, 'one two']);
    t.is(plain.code, 0);
    t.is(plain.out, 'ran with 1 arguments: one two\n');
    mkdirSync(join(dir, 'real'), { mode: 0o755 });
    symlinkSync(join(dir, 'real'), join(dir, 'link'));
    const pwd = await runOn(mode, [
      '--cwd',
      join(dir, 'link'),
      '--env',
      'PWD=/elsewhere',
      '--env',
      'OLDPWD=/x',
      'sh',
      '-c',
      'echo "$PWD $OLDPWD $(pwd -P)"',
    ]);
    t.is(pwd.out, `${join(dir, 'real')} / ${join(dir, 'real')}\n`);
    // The default directory is the user's home, else /.
    t.is((await runOn(mode, ['sh', '-c', 'echo "$PWD"'])).out, isRoot ? '/\n' : `${process.env.HOME}\n`);
  });

  test(`${mode}: a run-as user gets its supplementary groups from NSS`, async (t) => {
    if (!isRoot) {
      t.pass('needs root to add a user');
      return;
    }
    const id = await runOn(`${mode}-member`, ['id']);
    t.is(id.code, 0);
    t.is(id.out, spawnSync('id', [member], { encoding: 'utf8' }).stdout);
    for (const group of groups) t.true(id.out.includes(`(${group})`), id.out);
  });
}
