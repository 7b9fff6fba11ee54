// A real systemd, booted as PID 1 of new PID, mount, UTS and network namespaces, for
// tests of the unit as an operator uses it. What it writes stays inside: /tmp, /var/tmp
// and /run are private tmpfs (systemd's boot empties /tmp, "D /tmp"), and /etc,
// /usr/local, /var/lib, /var/log and /root are overlays whose changes live in that /run
// (users created, packages installed, journal files, npm's cache). Its network
// namespace (named with `ip netns attach`) has only loopback: the agent's port 6789
// there is nobody else's. What systemd creates in the host's cgroup hierarchies (it
// thinks it owns them) is removed after it has powered off.
import { execFileSync, spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { addCleanup, waitFor } from './fleet.js';

const SYSTEMD = '/lib/systemd/systemd';
const OVERLAID = ['/etc', '/usr/local', '/var/lib', '/var/log', '/root'];
/** Where `shared` (a host directory) appears inside the machine. */
export const SHARED_INSIDE = '/run/distrun-shared';

/** Why this host cannot boot a test systemd, or undefined when it can. */
export function systemdUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root';
  if (!existsSync(SYSTEMD)) return `no ${SYSTEMD}`;
  // Booting a second systemd beside a real one would fight over the host's cgroups.
  if (readFileSync('/proc/1/comm', 'utf8').trim() === 'systemd') return 'PID 1 of this host is systemd';
  const probe = spawnSync('unshare', ['--pid', '--fork', '--mount', '--net', '--uts', '--mount-proc', 'true'], { encoding: 'utf8' });
  if (probe.status !== 0) return `unshare is not allowed here (${probe.stderr.trim() || probe.status})`;
  return undefined;
}

/** Mount points of every cgroup hierarchy (v1 controllers, systemd's, the unified one). */
function cgroupRoots(): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((line) => / - cgroup2? /.test(line))
    .map((line) => line.split(' ')[4]!);
}

function cgroupEntries(): Map<string, Set<string>> {
  const entries = new Map<string, Set<string>>();
  for (const root of cgroupRoots()) {
    try {
      entries.set(root, new Set(readdirSync(root).filter((name) => statSync(join(root, name)).isDirectory())));
    } catch {
      // not mounted here
    }
  }
  return entries;
}

/** Removes an empty cgroup tree, deepest first. */
function removeCgroupTree(dir: string): void {
  for (const name of readdirSync(dir)) {
    const child = join(dir, name);
    if (statSync(child).isDirectory()) removeCgroupTree(child);
  }
  rmdirSync(dir);
}

export interface SystemdMachine {
  /** The machine's PID 1, as the host sees it. */
  pid: number;
  /** Name of its network namespace, for `ip netns exec` (RunOptions.netns). */
  netns: string;
  /** Runs a program inside (mount and PID namespaces; `network: true` adds the network one). */
  exec(argv: string[], options?: { network?: boolean; input?: string }): SpawnSyncReturns<string>;
  /** `systemctl ARGS...` inside. */
  systemctl(...args: string[]): SpawnSyncReturns<string>;
  /** `systemctl show -p NAME --value UNIT`. */
  property(unit: string, name: string): string;
  /** Powers off and removes everything it left on the host. */
  shutdown(): Promise<void>;
}

/** Boots systemd to basic.target with `shared` (a host directory) visible at SHARED_INSIDE. */
export async function bootSystemd(shared: string, name: string): Promise<SystemdMachine> {
  const before = cgroupEntries();
  const overlays = OVERLAID.map((dir, i) => {
    const scratch = `/run/distrun-overlay/${i}`;
    return `mkdir -p ${scratch}/upper ${scratch}/work && mount -t overlay overlay -o lowerdir=${dir},upperdir=${scratch}/upper,workdir=${scratch}/work ${dir}`;
  });
  const script = [
    'set -e',
    'mount -t tmpfs -o mode=0755 tmpfs /run',
    'mkdir -m 0700 /run/distrun-overlay',
    ...overlays,
    `mkdir -p ${SHARED_INSIDE} && mount --bind "$0" ${SHARED_INSIDE}`,
    'mount -t tmpfs tmpfs /tmp && mount -t tmpfs tmpfs /var/tmp',
    'ip link set lo up',
    `hostname ${name}`,
    // basic.target: the system's own services (a database, a web server) stay down.
    `exec ${SYSTEMD} --system --unit=basic.target`,
  ].join('\n');
  const unshare = spawn('unshare', ['--pid', '--fork', '--mount', '--net', '--uts', '--mount-proc', 'sh', '-c', script, shared], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let bootErrors = '';
  unshare.stderr!.on('data', (c: Buffer) => {
    bootErrors += c.toString();
  });
  const exited = new Promise<void>((resolve) => unshare.once('exit', () => resolve()));
  let pid = 0;
  const findPid = (): boolean => {
    // The forked child of unshare becomes PID 1 once it has executed systemd.
    const out = spawnSync('pgrep', ['-P', String(unshare.pid), '-x', 'systemd'], { encoding: 'utf8' }).stdout.trim();
    pid = Number(out.split('\n')[0] ?? 0);
    return pid > 0;
  };
  let netnsAttached = false;
  const cleanup = async (): Promise<void> => {
    if (pid > 0 && unshare.exitCode === null) {
      spawnSync('nsenter', ['-t', String(pid), '-m', '-p', 'systemctl', 'poweroff']);
      // Killing PID 1 of a namespace kills everything in it: the end, if poweroff hangs.
      if (!(await waitFor(() => unshare.exitCode !== null || unshare.signalCode !== null, 60_000, 100))) {
        process.kill(pid, 'SIGKILL');
      }
    } else if (unshare.exitCode === null) {
      unshare.kill('SIGKILL');
    }
    await exited;
    if (netnsAttached) spawnSync('ip', ['netns', 'delete', name]);
    for (const [root, existing] of before) {
      for (const entry of readdirSync(root)) {
        const dir = join(root, entry);
        if (existing.has(entry) || !statSync(dir).isDirectory()) continue;
        try {
          removeCgroupTree(dir);
        } catch {
          // a process of the machine still dying in it: nothing of ours to keep
        }
      }
    }
  };
  addCleanup(cleanup);
  if (!(await waitFor(findPid, 30_000, 50))) throw new Error(`systemd did not start: ${bootErrors}`);
  const exec = (argv: string[], options: { network?: boolean; input?: string } = {}): SpawnSyncReturns<string> =>
    spawnSync('nsenter', ['-t', String(pid), '-m', '-p', ...(options.network ? ['-n'] : []), '--', ...argv], {
      encoding: 'utf8',
      input: options.input,
      timeout: 300_000,
    });
  // Until its manager listens, systemctl cannot reach it.
  if (!(await waitFor(() => exec(['systemctl', 'is-system-running', '--wait']).stdout.trim() !== '', 60_000, 200))) {
    throw new Error(`systemd did not boot: ${bootErrors}`);
  }
  execFileSync('ip', ['netns', 'attach', name, String(pid)]);
  netnsAttached = true;
  return {
    pid,
    netns: name,
    exec,
    systemctl: (...args) => exec(['systemctl', '--no-pager', ...args]),
    property: (unit, property) => exec(['systemctl', 'show', '-p', property, '--value', unit]).stdout.trim(),
    shutdown: cleanup,
  };
}
