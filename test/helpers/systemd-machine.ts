// A real systemd, booted as PID 1 of new PID, mount, UTS and network namespaces, for
// tests of the unit as an operator uses it. What it writes stays inside: /tmp, /var/tmp
// and /run are private tmpfs (systemd's boot empties /tmp, "D /tmp"), and /etc,
// /usr/local, /var/lib, /var/log and /root are overlays whose changes live in that /run
// (users created, packages installed, journal files, npm's cache). Its network
// namespace (named with `ip netns attach`) has only loopback: the agent's port 6789
// there is nobody else's. Its cgroups are its own, as in systemd-nspawn: a cgroup made
// for it in every hierarchy (below the test's own) is the root of its cgroup namespace,
// and cgroup filesystems mounted afresh inside show that root; two machines booted side
// by side (two suites at once) never meet. That subtree, and nothing else, is removed
// after it has powered off.
import { execFileSync, spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
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
  const probe = spawnSync('unshare', ['--cgroup', '--pid', '--fork', '--mount', '--net', '--uts', '--mount-proc', 'true'], { encoding: 'utf8' });
  if (probe.status !== 0) return `unshare is not allowed here (${probe.stderr.trim() || probe.status})`;
  return undefined;
}

/** A cgroup hierarchy as this host mounts it, and this process's cgroup in it. */
interface Hierarchy {
  fstype: 'cgroup' | 'cgroup2';
  mountPoint: string;
  /** Super options without rw/ro: the controllers (or name=) of a v1 hierarchy. */
  options: string[];
  /** This process's cgroup in it, as a directory on this host. */
  own: string;
}

/**
 * Every cgroup hierarchy (v1 controllers, systemd's name=systemd, the unified one) from
 * /proc/self/mountinfo, with this process's place in each from /proc/self/cgroup.
 */
function hierarchies(): Hierarchy[] {
  const memberships = readFileSync('/proc/self/cgroup', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [, controllers, ...path] = line.split(':');
      return { controllers: controllers ? controllers.split(',') : [], path: path.join(':') };
    });
  const found: Hierarchy[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    // "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS"
    const [before, after] = line.split(' - ');
    const [fstype, , superOptions] = after?.split(' ') ?? [];
    if (fstype !== 'cgroup' && fstype !== 'cgroup2') continue;
    const [, , , root, mountPoint] = before!.split(' ');
    const options = superOptions!.split(',').filter((o) => o !== 'rw' && o !== 'ro');
    const member =
      fstype === 'cgroup2'
        ? memberships.find((m) => m.controllers.length === 0)
        : memberships.find((m) => m.controllers.length > 0 && m.controllers.every((c) => options.includes(c)));
    if (!member || !root || !mountPoint) continue;
    // Mounted at its root (the usual case) or at a cgroup that contains ours.
    if (root !== '/' && member.path !== root && !member.path.startsWith(`${root}/`)) continue;
    found.push({ fstype, mountPoint, options, own: join(mountPoint, root === '/' ? member.path : member.path.slice(root.length)) });
  }
  return found;
}

/** Removes an empty cgroup tree, deepest first. */
function removeCgroupTree(dir: string): void {
  for (const name of readdirSync(dir)) {
    const child = join(dir, name);
    if (statSync(child).isDirectory()) removeCgroupTree(child);
  }
  rmdirSync(dir);
}

/** Removes every tree of `dirs` that exists; false while one cannot be removed yet. */
function removeCgroupTrees(dirs: string[]): boolean {
  let removed = true;
  for (const dir of dirs) {
    if (!existsSync(dir)) continue;
    try {
      removeCgroupTree(dir);
    } catch {
      removed = false; // a process of the machine still dying in it
    }
  }
  return removed;
}

const CGROUP_PREFIX = 'distrun-test-';

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes the (empty) cgroups of machines whose test process died before cleaning up. */
function removeStaleCgroups(all: Hierarchy[]): void {
  for (const hierarchy of all) {
    for (const entry of readdirSync(hierarchy.own)) {
      const owner = new RegExp(`^${CGROUP_PREFIX}.*-(\\d+)$`).exec(entry);
      if (owner && Number(owner[1]) !== process.pid && !isAlive(Number(owner[1]))) removeCgroupTrees([join(hierarchy.own, entry)]);
    }
  }
}

/**
 * The machine's own cgroup in every hierarchy, made below this process's (as
 * systemd-nspawn does): what systemd creates in there is the machine's, and nobody else's.
 */
function makeMachineCgroups(all: Hierarchy[], name: string): string[] {
  const dirs: string[] = [];
  try {
    for (const hierarchy of all) {
      const dir = join(hierarchy.own, `${CGROUP_PREFIX}${name}-${process.pid}`);
      mkdirSync(dir);
      dirs.push(dir);
      // A new cpuset has no CPUs and no memory nodes (unless clone_children): no process could join it.
      if (hierarchy.options.includes('cpuset')) {
        for (const file of ['cpuset.cpus', 'cpuset.mems']) writeFileSync(join(dir, file), readFileSync(join(hierarchy.own, file)));
      }
    }
  } catch (err) {
    removeCgroupTrees(dirs.reverse());
    throw err;
  }
  return dirs;
}

/**
 * Mounts, inside the machine's mount namespace, the host's cgroup hierarchies afresh on a
 * tmpfs of its own: in its cgroup namespace each shows the machine's cgroup as the root.
 */
function cgroupMounts(all: Hierarchy[]): string[] {
  // The host's mounts go first (this mount namespace's copies only): what the machine's
  // mountinfo lists is its own, as on a host.
  const lines = ['umount -R /sys/fs/cgroup', 'mount -t tmpfs -o mode=0755 tmpfs /sys/fs/cgroup'];
  for (const { fstype, mountPoint, options } of all) {
    const flags = fstype === 'cgroup' ? `-o ${options.join(',')}` : options.length > 0 ? `-o ${options.join(',')}` : '';
    lines.push(`mkdir -p ${mountPoint} && mount -t ${fstype} ${flags} ${fstype} ${mountPoint}`);
  }
  return lines;
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
  const all = hierarchies();
  removeStaleCgroups(all);
  const cgroups = makeMachineCgroups(all, name);
  const overlays = OVERLAID.map((dir, i) => {
    const scratch = `/run/distrun-overlay/${i}`;
    return `mkdir -p ${scratch}/upper ${scratch}/work && mount -t overlay overlay -o lowerdir=${dir},upperdir=${scratch}/upper,workdir=${scratch}/work ${dir}`;
  });
  const script = [
    'set -e',
    ...cgroupMounts(all),
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
  // The launcher joins the machine's cgroups, then becomes unshare, whose new cgroup
  // namespace has them as its root. (Propagation private: no mount reaches the host.)
  const joinCgroups = 'for procs in $DISTRUN_MACHINE_CGROUPS; do echo $$ > "$procs" || exit 1; done; unset DISTRUN_MACHINE_CGROUPS; exec "$@"';
  const namespaces = ['--cgroup', '--pid', '--fork', '--mount', '--propagation', 'private', '--net', '--uts', '--mount-proc'];
  const unshare = spawn('sh', ['-c', joinCgroups, 'launcher', 'unshare', ...namespaces, 'sh', '-c', script, shared], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, DISTRUN_MACHINE_CGROUPS: cgroups.map((dir) => join(dir, 'cgroup.procs')).join(' ') },
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
    // Exactly the machine's cgroups, once the last of its processes has left them.
    if (!(await waitFor(() => removeCgroupTrees(cgroups), 30_000, 100))) throw new Error(`cgroups left behind: ${cgroups.join(' ')}`);
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
