// What a client's request may do to the processes the agent starts: the environment and
// working directory reach the command only as the run-as user, variables that change how
// programs load or run are refused in every mode, inherited descriptors do not leak, and
// a command too big for exec is reported as such and audited to its end.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { directLaunch, launchPlan } from '../src/agent/command-launch.js';
import { refusedVariable } from '../src/agent/command-environment.js';
import { encodeCommand, encodeVersionOffer } from '../src/protocol/messages.js';
import { cleanupAll, distrun, failureIn, makePki, rawExchange, startAgent, tempDir, type Pki, type RunningAgent } from './helpers/fleet.js';
import { assertStillServing } from './helpers/serving.js';

const isRoot = process.getuid?.() === 0;
let pki: Pki;
/** No policy (the documented default) and, as root, runAs nobody. */
let open: RunningAgent;
/** A policy whose rule allows every variable name. */
let permissive: RunningAgent;
let audit: string;

test.before(async () => {
  pki = await makePki(['agent1']);
  audit = join(tempDir(), 'audit.jsonl');
  open = await startAgent(pki, 'agent1', { config: { runAs: isRoot ? 'nobody' : undefined, auditLog: audit } });
  permissive = await startAgent(pki, 'agent1', {
    config: { runAs: isRoot ? 'nobody' : undefined, policy: [{ clients: ['admin'], commands: ['*'], shell: true, env: ['*'], cwd: true }] },
  });
});
test.after.always(cleanupAll);

const on = (agent: RunningAgent, ...args: string[]) => distrun(['-H', `127.0.0.1:${agent.port}`, '--pki', pki.dir, ...args]);

test('the direct launch (native spawn): the client variables go to the program only, with the steps the child takes first', (t) => {
  const launch = directLaunch({
    argv: ['id', '-u'],
    baseEnv: { PATH: '/usr/bin:/bin', HOME: '/home/x' },
    clientEnv: { APP_MODE: 'a b', PWD: '/elsewhere', OLDPWD: '/x' },
    cwd: '/srv',
    switchTo: { name: 'nobody', uid: 65534, gid: 65534 },
    cgroupProcs: '/sys/fs/cgroup/x/cgroup.procs',
  });
  t.is(launch.file, 'id');
  t.deepEqual(launch.argv, ['id', '-u']);
  // PWD and OLDPWD are the child's to set (as the launcher's `cd -P` does), not the client's.
  t.deepEqual(launch.env.sort(), ['APP_MODE=a b', 'HOME=/home/x', 'PATH=/usr/bin:/bin']);
  t.deepEqual(launch.steps, {
    cgroupProcs: '/sys/fs/cgroup/x/cgroup.procs',
    user: { name: 'nobody', uid: 65534, gid: 65534 },
    cwd: '/srv',
    home: '/home/x',
    path: '/usr/bin:/bin',
  });
  t.throws(() => directLaunch({ argv: ['id'], baseEnv: {}, clientEnv: { 'A=B': 'x' }, cwd: undefined }), { message: /invalid variable name/ });
});

test('the launch plan: what the agent executes as root never carries a client variable under its own name', (t) => {
  const plan = launchPlan({
    argv: ['id'],
    baseEnv: { PATH: '/usr/bin:/bin', HOME: '/home/x' },
    clientEnv: { APP_MODE: 'a b', OTHER: 'x' },
    cwd: '/srv',
    switchTo: { name: 'nobody', uid: 65534, gid: 65534 },
    statusFd: true,
  });
  t.is(plan.file, '/usr/bin/setpriv');
  t.false('APP_MODE' in plan.env || 'OTHER' in plan.env);
  t.is(plan.env.DISTRUN_ENV_0, 'a b');
  t.is(plan.env.DISTRUN_CWD, '/srv');
  t.is(plan.env.PATH, '/usr/bin:/bin');
});

test("refused variables: the loader, the C library, shells, interpreters, helpers and the agent's own", (t) => {
  for (const name of [
    'LD_PRELOAD',
    'LD_LIBRARY_PATH',
    'LD_AUDIT',
    'GLIBC_TUNABLES',
    'MALLOC_ARENA_MAX',
    'GCONV_PATH',
    'LOCPATH',
    'BASH_ENV',
    'ENV',
    'SHELLOPTS',
    'IFS',
    'PYTHONPATH',
    'PERL5OPT',
    'RUBYOPT',
    'NODE_OPTIONS',
    'JAVA_TOOL_OPTIONS',
    'PAGER',
    'GIT_SSH_COMMAND',
    'OPENSSL_CONF',
    'PATH',
    'HOME',
    'USER',
    'LOGNAME',
    'SHELL',
    'DISTRUN_CLIENT',
    'DISTRUN_ENV_0',
  ]) {
    t.truthy(refusedVariable(name), name);
  }
  for (const name of ['APP_TOKEN', 'LANG', 'LC_ALL', 'TZ', 'TMPDIR', 'DEBIAN_FRONTEND', 'http_proxy']) t.is(refusedVariable(name), undefined, name);
});

// A library whose constructor records the uid it runs as: if the agent let LD_PRELOAD
// reach setpriv, it would record 0 while the command itself reports nobody.
const cc = spawnSync('cc', ['--version']).status === 0;
(isRoot && cc ? test : test.skip)('--env LD_PRELOAD is refused with the reason, audited, and no library runs, whatever the policy', async (t) => {
  const dir = tempDir();
  chmodSync(dir, 0o755);
  const marker = join(dir, 'uids');
  const source = join(dir, 'evil.c');
  writeFileSync(
    source,
    `#include <stdio.h>\n#include <unistd.h>\n__attribute__((constructor)) static void evil(void) {\n` +
      `  FILE *f = fopen("${marker}", "a"); if (f) { fprintf(f, "%d\\n", (int) getuid()); fclose(f); }\n}\n`,
  );
  const library = join(dir, 'evil.so');
  t.is(spawnSync('cc', ['-shared', '-fPIC', '-o', library, source]).status, 0);
  chmodSync(dir, 0o777); // nobody could write the marker too
  for (const agent of [open, permissive]) {
    const r = await on(agent, '--env', `LD_PRELOAD=${library}`, '--', 'id');
    t.is(r.code, 255);
    t.regex(r.stderr, /--env LD_PRELOAD is refused: it changes how programs are loaded/);
    t.is(r.stdout.toString(), '');
  }
  t.false(existsSync(marker), 'the library never ran, as root or as anyone');
  const denied = readFileSync(audit, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
    .find((a) => a.event === 'denied');
  t.regex(denied?.reason ?? '', /LD_PRELOAD is refused/);
  await assertStillServing(t, open, pki.dir);
});

test('--env cannot override what the agent sets: PATH, HOME, USER, DISTRUN_CLIENT', async (t) => {
  for (const name of ['PATH', 'HOME', 'USER', 'DISTRUN_CLIENT']) {
    const r = await on(permissive, '--env', `${name}=/tmp/evil`, '--', 'env');
    t.is(r.code, 255, name);
    t.regex(r.stderr, new RegExp(`--env ${name} is refused: `));
  }
  await assertStillServing(t, permissive, pki.dir);
});

test('allowed variables reach the command exactly, as the run-as user, and nothing of the launcher shows', async (t) => {
  const value = `a 'b' "c" $HOME \`x\` \\ \n; rm -rf /`;
  const r = await on(
    open,
    '-N',
    '--env',
    `APP_VALUE=${value}`,
    '--env',
    'n=5',
    '--',
    'sh',
    '-c',
    'printf "%s|%s|%s|" "$APP_VALUE" "$n" "$(id -un)"; env | grep -c "^DISTRUN_" ; pwd',
  );
  t.is(r.code, 0, r.stderr);
  const [user, home] = isRoot ? ['nobody', '/'] : [userInfo().username, userInfo().homedir];
  t.is(r.stdout.toString(), `${value}|5|${user}|1\n${home}\n`);
});

(isRoot ? test : test.skip)(
  '--cwd is entered as the run-as user: a directory nobody may not enter is refused, and says nothing of what is inside',
  async (t) => {
    const dir = tempDir();
    chmodSync(dir, 0o755);
    const secret = join(dir, 'root-only');
    mkdirSync(join(secret, 'inner'), { recursive: true });
    chmodSync(secret, 0o700);
    writeFileSync(join(secret, 'inner', 'file.txt'), 'root secret\n');
    const existing = await on(open, '--cwd', join(secret, 'inner'), '--', 'cat', 'file.txt');
    t.is(existing.code, 126);
    t.false(existing.stdout.toString().includes('root secret'));
    const missing = await on(open, '--cwd', join(secret, 'absent'), '--', 'cat', 'file.txt');
    t.is(missing.code, 126);
    const reason = (r: typeof existing, path: string) => r.stderr.split('\n')[0]!.replace(path, 'PATH');
    t.is(reason(existing, join(secret, 'inner')), reason(missing, join(secret, 'absent')), 'the same answer whether the directory exists or not');
    t.regex(existing.stderr, /cannot use working directory .*: it does not exist, is not a directory, or nobody may not enter it/);
    // A program only root may reach is "not found" for nobody, like a missing one.
    const program = await on(open, '--', join(secret, 'inner', 'file.txt'));
    const absent = await on(open, '--', join(secret, 'inner', 'absent'));
    t.is(program.code, 127);
    t.is(program.stderr.split('\n')[0]!.replace('file.txt', 'X'), absent.stderr.split('\n')[0]!.replace('absent', 'X'));
    await assertStillServing(t, open, pki.dir);
  },
);

(isRoot ? test : test.skip)('descriptors the agent was started with never reach a command', async (t) => {
  const secretFile = join(tempDir(), 'token');
  writeFileSync(secretFile, 'inherited-secret\n', { mode: 0o600 });
  // bash opens the file as descriptor 200 and execs the agent with it still open.
  const agent = await startAgent(pki, 'agent1', {
    config: { runAs: 'nobody' },
    prefix: ['bash', '-c', 'exec 200<"$0" && exec "$@"', secretFile],
  });
  const r = await on(agent, '-N', '--', 'bash', '-c', 'cat <&200');
  t.false(r.stdout.toString().includes('inherited-secret'), r.stdout.toString());
  t.regex(r.stderr, /200: Bad file descriptor/);
  const note = agent.logs.find((l) => l.msg === 'closed descriptors inherited from the parent');
  t.true((note?.descriptors as number[] | undefined)?.includes(200));
  await assertStillServing(t, agent, pki.dir);
});

test("a command beyond the system's argument limit (E2BIG) is reported as such, and its audit start has an end", async (t) => {
  // Sent raw: distrun itself could not be started with such an argument.
  const frames = await rawExchange(open.port, pki.dir, [
    encodeVersionOffer({ versions: [3], software: 'test' }),
    encodeCommand(['echo', 'x'.repeat(200_000)]),
  ]);
  const failure = failureIn(frames);
  t.is(failure?.code, 'E_SPAWN');
  t.regex(failure?.reason ?? '', /argument list too long/);
  const records = readFileSync(audit, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  const start = records.filter((a) => a.event === 'start' && a.argv?.[0] === 'echo' && a.argv[1]?.length === 200_000).pop();
  t.truthy(start);
  const end = records.find((a) => a.event === 'end' && a.id === start.id);
  t.regex(end?.reason ?? '', /argument list too long/);
  await assertStillServing(t, open, pki.dir);
});
