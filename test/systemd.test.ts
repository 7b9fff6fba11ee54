// The agent under a real systemd, installed and run the way docs/operations.md tells an
// operator to: scripts/install-agent.sh with the packed package, `systemctl enable
// --now`, reload, stop, restart, a crash, a broken configuration, uninstall --purge.
// test/helpers/systemd-machine.ts boots systemd in namespaces of its own; everything it
// and the agent write stays there.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { cpSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { addCleanup, cleanupAll, distrun, makePki, processesMatching, RUN_TOKEN, spawnDistrun, tempDir, waitFor, type Pki } from './helpers/fleet.js';
import { bootSystemd, SHARED_INSIDE, systemdUnavailable, type SystemdMachine } from './helpers/systemd-machine.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const UNIT = 'distrunner-agent.service';
const RUN_AS = 'distrun-sd-user';
const CONFIG = '/etc/distrunner/agent.yaml';

const unavailable = systemdUnavailable();
// One line where this cannot run (no root, no unshare, systemd already PID 1).
const serial = unavailable ? test.skip : test.serial;
if (unavailable) console.log(`systemd: skipped: ${unavailable}`);

let machine: SystemdMachine;
let pki: Pki;
let shared: string;

test.before(async () => {
  if (unavailable) return;
  shared = tempDir('distrun-systemd-');
  execFileSync('npm', ['pack', '--silent', '--pack-destination', shared], { cwd: repo, stdio: ['ignore', 'ignore', 'inherit'] });
  // The machine sees the host's files except /tmp, /var/tmp and /run, where a checkout
  // (CI clones into /tmp) may live: what it runs is copied into the shared directory.
  cpSync(join(repo, 'scripts'), join(shared, 'scripts'), { recursive: true });
  pki = await makePki(['host1']);
  cpSync(pki.agent('host1'), join(shared, 'bundle'), { recursive: true });
  machine = await bootSystemd(shared, `distrun-sd-${process.pid}`);
});
test.after.always(cleanupAll);

const tarballInside = (): string => join(SHARED_INSIDE, readdirSync(shared).find((f) => f.endsWith('.tgz'))!);
const onAgent = (args: string[]) => distrun(['-H', '127.0.0.1', '--pki', pki.dir, ...args], { netns: machine.netns });
/** The agent's pid inside the machine's PID namespace (never a pid on this host). */
const mainPid = (): number => Number(machine.property(UNIT, 'MainPID'));
const journal = (...args: string[]): string => machine.exec(['journalctl', '--no-pager', '-o', 'cat', '-u', UNIT, ...args]).stdout;
/**
 * Processes (seen from the host) whose whole command line is `args`: the remote ones,
 * not the distrun clients whose arguments contain them.
 */
const running = (args: string): string[] => processesMatching(args).filter((line) => line.trim().replace(/^\d+\s+/, '') === args);
/** The distrun client, left running in the background against the machine's agent. */
const onAgentInBackground = (args: string[]) => spawnDistrun(['-H', '127.0.0.1', '--pki', pki.dir, ...args], {}, machine.netns);
/**
 * A command that starts a daemon outside its process group (setsid) and then sleeps
 * itself; `n` makes its two sleeps unique to one test. `running(k)`: each of them runs k times.
 */
function escaping(n: number) {
  const [daemon, leader] = [`sleep ${9870 + n}.${RUN_TOKEN}`, `sleep ${9880 + n}.${RUN_TOKEN}`];
  return {
    command: ['--', 'sh', '-c', `setsid ${daemon} >/dev/null 2>&1 </dev/null & exec ${leader}`],
    running: (k: number): boolean => running(daemon).length === k && running(leader).length === k,
  };
}
const settled = (unit: string): Promise<boolean> =>
  waitFor(() => !['activating', 'deactivating', 'reloading'].includes(machine.property(unit, 'ActiveState')), 120_000, 100);

serial('install-agent.sh and enable --now: the unit becomes ready; ping and a command work', async (t) => {
  const install = machine.exec([
    'bash',
    join(SHARED_INSIDE, 'scripts/install-agent.sh'),
    '--bundle',
    join(SHARED_INSIDE, 'bundle'),
    '--package',
    tarballInside(),
    '--run-as',
    RUN_AS,
  ]);
  t.is(install.status, 0, `${install.stdout}\n${install.stderr}`);
  t.regex(install.stdout, /creating system user distrun-sd-user/);
  t.is(machine.property(UNIT, 'ActiveState'), 'active');
  t.is(machine.property(UNIT, 'UnitFileState'), 'enabled');
  // Type=notify with NotifyAccess=main: active means the agent's own READY=1 was accepted.
  t.regex(machine.property(UNIT, 'StatusText'), /^listening on 0\.0\.0\.0:6789$/);
  const ping = await onAgent(['ping']);
  t.is(ping.code, 0, ping.stderr);
  const id = await onAgent(['id', '-un']);
  t.is(id.stdout.toString(), `127.0.0.1: ${RUN_AS}\n`, id.stderr);
  // The agent put itself in charge of its cgroup: the command ran in one of its own.
  const cgroup = await onAgent(['cat', '/proc/self/cgroup']);
  t.regex(cgroup.stdout.toString(), /^127\.0\.0\.1: 0::\/system\.slice\/distrunner-agent\.service\/command-\d+-\d+$/m);
});

serial("the machine's cgroups are its own: from the host, its PID 1 is below a cgroup made for it in every hierarchy", async (t) => {
  const lines = readFileSync(`/proc/${machine.pid}/cgroup`, 'utf8').split('\n').filter(Boolean);
  t.true(lines.length > 0);
  for (const line of lines) t.regex(line, new RegExp(`/distrun-test-${machine.netns}-${process.pid}(/|$)`), line);
  // Inside (a command of the agent), its cgroup namespace has that cgroup as the root.
  const inside = await onAgent(['cat', '/proc/1/cgroup']);
  t.regex(inside.stdout.toString(), /^127\.0\.0\.1: 0::\/init\.scope$/m, inside.stderr);
});

serial('a command cannot take over the unit with sd_notify: MAINPID and STATUS from it are refused', async (t) => {
  const before = mainPid();
  const attack = await onAgent([
    '--',
    'sh',
    '-c',
    'NOTIFY_SOCKET=/run/systemd/notify systemd-notify MAINPID=$$ "STATUS=taken over"; NOTIFY_SOCKET=/run/systemd/notify systemd-notify --status=hijacked; echo sent',
  ]);
  t.is(attack.stdout.toString(), '127.0.0.1: sent\n', attack.stderr);
  // systemd got the messages and turned them away (not merely never received them).
  t.true(await waitFor(() => /reception only permitted for main PID/.test(journal())), journal());
  t.is(mainPid(), before);
  t.regex(machine.property(UNIT, 'StatusText'), /^listening on /);
  const reload = machine.systemctl('reload', UNIT);
  t.is(reload.status, 0, reload.stderr);
  t.is(machine.property(UNIT, 'ActiveState'), 'active');
  t.is(mainPid(), before);
  t.is((await onAgent(['true'])).code, 0);
});

serial(
  'what a command starts outside its process group (setsid) ends with the session: on exit, on --timeout, when the client is lost',
  async (t) => {
    // Ends by itself, leaving a daemon behind.
    const left = await onAgent(['--', 'sh', '-c', `setsid sleep 9871.${RUN_TOKEN} >/dev/null 2>&1 </dev/null & echo started`]);
    t.is(left.code, 0, left.stderr);
    t.true(await waitFor(() => running(`sleep 9871.${RUN_TOKEN}`).length === 0, 30_000), 'the setsid descendant was stopped');

    const timedOut = escaping(2);
    const timed = await onAgent(['--timeout', '2', ...timedOut.command]);
    t.not(timed.code, 0);
    t.regex(timed.stdout.toString() + timed.stderr, /timed out/);
    t.true(await waitFor(() => timedOut.running(0), 30_000));

    const lost = escaping(3);
    const client = onAgentInBackground(lost.command);
    t.true(await waitFor(() => lost.running(1), 30_000));
    client.child.kill('SIGKILL');
    await client.exit;
    t.true(await waitFor(() => lost.running(0), 60_000), 'lost client: everything stopped');
    t.is(machine.property(UNIT, 'ActiveState'), 'active');
  },
);

serial(
  'reload: a good config is applied; a broken one fails the reload visibly, the old one keeps serving, journalctl -p err shows why',
  async (t) => {
    const original = machine.exec(['cat', CONFIG]).stdout;
    const write = (text: string) => machine.exec(['sh', '-c', `cat > ${CONFIG}`], { input: text });
    addCleanup(() => {
      write(original);
    });
    const pid = mainPid();
    write(`${original}maxSessions: 100\n`);
    const good = machine.systemctl('reload', UNIT);
    t.is(good.status, 0, good.stderr);
    t.true(await waitFor(() => /"msg":"reloaded"/.test(journal())));

    write(`${original}maxSessions: lots\n`);
    const broken = machine.systemctl('reload', UNIT);
    t.not(broken.status, 0, 'systemctl reload fails');
    t.regex(broken.stderr, /failed/);
    t.is(machine.property(UNIT, 'ActiveState'), 'active');
    t.is(mainPid(), pid);
    t.is((await onAgent(['true'])).code, 0, 'the old configuration keeps serving');
    t.regex(journal('-p', 'err'), /maxSessions must be an integer/);

    // A SIGHUP that bypasses the check (a file broken in between): the agent's own
    // "reload failed" reaches the journal as an error too.
    const hup = machine.systemctl('kill', '--kill-whom=main', '--signal=SIGHUP', UNIT);
    t.is(hup.status, 0, hup.stderr);
    t.true(await waitFor(() => /"msg":"reload failed"/.test(journal('-p', 'err'))), journal('-p', 'err'));
    t.notRegex(journal('-p', 'err'), /"msg":"reloaded"/, 'info lines are not errors');
    // Readable without downloading anything.
    const text = machine.exec(['sh', '-c', `journalctl --no-pager -o cat -u ${UNIT} | /usr/local/bin/distrunner-agent --format-log`]).stdout;
    t.regex(text, /^\S+ ERROR reload failed reason=.*maxSessions must be an integer/m);

    write(original);
    t.is(machine.systemctl('reload', UNIT).status, 0);
  },
);

serial('stop drains: a running command finishes and its client gets its output; restart serves again', async (t) => {
  const [started, go] = ['/tmp/distrun-sd-started', '/tmp/distrun-sd-go'];
  const command = onAgent(['--', 'sh', '-c', `touch ${started}; while [ ! -e ${go} ]; do sleep 0.1; done; echo finished`]);
  t.true(await waitFor(() => machine.exec(['test', '-e', started]).status === 0, 30_000));
  const stop = machine.systemctl('stop', '--no-block', UNIT);
  t.is(stop.status, 0, stop.stderr);
  t.true(await waitFor(() => machine.property(UNIT, 'ActiveState') === 'deactivating', 30_000));
  t.is((await onAgent(['true'])).code, 255, 'no new sessions while draining');
  machine.exec(['touch', go]);
  const result = await command;
  t.is(result.code, 0, result.stderr);
  t.is(result.stdout.toString(), '127.0.0.1: finished\n');
  t.true(await settled(UNIT));
  t.is(machine.property(UNIT, 'ActiveState'), 'inactive');
  t.is(machine.property(UNIT, 'Result'), 'success');

  t.is(machine.systemctl('start', UNIT).status, 0);
  const first = mainPid();
  const restart = machine.systemctl('restart', UNIT);
  t.is(restart.status, 0, restart.stderr);
  t.not(mainPid(), first);
  t.is((await onAgent(['true'])).code, 0);
});

serial('kill -9 of the agent: systemd kills its commands (setsid ones too) and restarts it', async (t) => {
  const restarts = Number(machine.property(UNIT, 'NRestarts'));
  const pid = mainPid();
  const killed = escaping(4);
  const client = onAgentInBackground(killed.command);
  t.true(await waitFor(() => killed.running(1), 30_000));
  t.is(machine.exec(['kill', '-9', String(pid)]).status, 0);
  t.is(await client.exit, 255, 'the client sees its agent lost');
  t.true(
    await waitFor(() => Number(machine.property(UNIT, 'NRestarts')) === restarts + 1 && machine.property(UNIT, 'ActiveState') === 'active', 60_000),
  );
  t.not(mainPid(), pid);
  t.true(killed.running(0), 'the setsid daemon and the command are both gone');
  t.is((await onAgent(['true'])).code, 0);
});

serial('a broken configuration leaves the unit failed at once, no restarts, the reason in systemctl status', async (t) => {
  const original = machine.exec(['cat', CONFIG]).stdout;
  machine.exec(['sh', '-c', `cat > ${CONFIG}`], { input: `${original}killGraceSeconds: soon\n` });
  const restart = machine.systemctl('restart', UNIT);
  t.not(restart.status, 0);
  t.true(await settled(UNIT));
  // SubState would be auto-restart if a restart were scheduled.
  t.is(machine.property(UNIT, 'ActiveState'), 'failed');
  t.is(machine.property(UNIT, 'SubState'), 'failed');
  t.is(machine.property(UNIT, 'ExecMainStatus'), '78');
  // A start by hand resets the count; each automatic restart would add one.
  t.is(machine.property(UNIT, 'NRestarts'), '0');
  const status = machine.systemctl('status', UNIT);
  t.regex(status.stdout, /status=78\/CONFIG/);
  t.regex(status.stdout, /killGraceSeconds must be an integer/);
  t.regex(journal('-p', 'err'), /killGraceSeconds must be an integer/);

  machine.exec(['sh', '-c', `cat > ${CONFIG}`], { input: original });
  // This file has started the unit more often than StartLimitBurst allows in its interval.
  machine.systemctl('reset-failed', UNIT);
  const fixed = machine.systemctl('restart', UNIT);
  t.is(fixed.status, 0, fixed.stderr);
  t.is((await onAgent(['true'])).code, 0);
});

serial('uninstall-agent.sh --purge leaves nothing: unit, package, files, the user and group it created', async (t) => {
  const uninstall = machine.exec(['bash', join(SHARED_INSIDE, 'scripts/uninstall-agent.sh'), '--purge']);
  t.is(uninstall.status, 0, `${uninstall.stdout}\n${uninstall.stderr}`);
  t.regex(uninstall.stdout, /removing user distrun-sd-user/);
  for (const path of [
    '/etc/distrunner',
    '/etc/systemd/system/distrunner-agent.service',
    '/usr/local/lib/node_modules/distrunner',
    '/usr/local/bin/distrunner-agent',
    '/usr/local/bin/distrun',
    '/etc/systemd/system/multi-user.target.wants/distrunner-agent.service',
  ]) {
    t.not(machine.exec(['test', '-e', path]).status, 0, `${path} is gone`);
  }
  t.not(machine.exec(['getent', 'passwd', RUN_AS]).status, 0, 'user removed');
  t.not(machine.exec(['getent', 'group', RUN_AS]).status, 0, 'group removed');
  t.is(machine.property(UNIT, 'LoadState'), 'not-found');
  t.is(machine.exec(['pgrep', '-f', 'distrunner-agent']).status, 1, 'no agent process left');
});
