// A cgroup per command, inside the agent's own cgroup when systemd has delegated it
// (Delegate=yes, with --command-cgroups). A process group is only a convention: a command
// leaves it with setsid (daemons do, and so does `setsid sleep 999 &`), and nothing the
// agent sends to the group reaches it any more. A cgroup is a boundary an unprivileged
// process cannot leave (moving a process needs write access to the cgroup.procs of a
// common ancestor, which is root's), and every descendant starts inside its parent's.
//
// Placement happens before anything the client chose runs: the first thing the command's
// process does, still as root, is write its own pid into the cgroup (command-launch.ts),
// then it executes setpriv and the launcher. Signals are sent only in ways that cannot
// reach a stranger: SIGKILL through cgroup.kill (atomic, kernel 5.14), and SIGTERM to
// the pids listed in cgroup.procs only while the cgroup is frozen — frozen processes
// cannot exit, so none of those pids can have been given to another process meanwhile.
//
// cgroup v2 only (the unified hierarchy, also mounted by systemd's hybrid mode). Without
// it, or outside a delegated cgroup, commands get their process group only.
import { mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** How often the cgroup is looked at while waiting for it to freeze or to empty. */
const POLL_MS = 10;
/** A cgroup that cannot freeze within this (processes in uninterruptible sleep) gets no SIGTERM, only the SIGKILL. */
const FREEZE_WAIT_MS = 1000;
/** Prefix of the commands' cgroups, so that leftovers of an earlier agent are recognised. */
const PREFIX = 'command-';

/**
 * Where a cgroup v2 path is in this mount namespace: `/proc/self/cgroup`'s "0::" line and
 * the cgroup2 mount in `/proc/self/mountinfo`. Pure, for tests; undefined without cgroup v2.
 */
function cgroupDirectory(procCgroup: string, mountinfo: string): string | undefined {
  const path = /^0::(\/.*)$/m.exec(procCgroup)?.[1];
  if (path === undefined) return undefined;
  for (const line of mountinfo.split('\n')) {
    // "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS"
    const [before, after] = line.split(' - ');
    if (!after?.startsWith('cgroup2 ')) continue;
    const [, , , root, mountPoint] = before!.split(' ');
    if (root === undefined || mountPoint === undefined) continue;
    const unescapeOctal = (s: string): string => s.replace(/\\([0-7]{3})/g, (_m, octal: string) => String.fromCharCode(parseInt(octal, 8)));
    const rootPath = unescapeOctal(root);
    if (rootPath !== '/' && path !== rootPath && !path.startsWith(`${rootPath}/`)) continue;
    return join(unescapeOctal(mountPoint), rootPath === '/' ? path : path.slice(rootPath.length));
  }
  return undefined;
}

/** The agent's delegated cgroup, in which each command gets a cgroup of its own. */
export class CommandCgroups {
  private next = 1;

  private constructor(readonly directory: string) {}

  /**
   * The agent's cgroup, if commands can get cgroups in it; otherwise the reason why not.
   * Removes empty command cgroups an earlier agent left (systemd kills their processes).
   */
  static open(): CommandCgroups | { unavailable: string } {
    let directory: string | undefined;
    try {
      directory = cgroupDirectory(readFileSync('/proc/self/cgroup', 'latin1'), readFileSync('/proc/self/mountinfo', 'latin1'));
    } catch (err) {
      return { unavailable: `cannot read /proc: ${(err as NodeJS.ErrnoException).code}` };
    }
    if (!directory) return { unavailable: 'this host has no cgroup v2 hierarchy' };
    const probe = join(directory, `${PREFIX}probe-${process.pid}`);
    try {
      mkdirSync(probe);
      rmdirSync(probe);
    } catch (err) {
      return { unavailable: `cannot make cgroups in ${directory} (${(err as NodeJS.ErrnoException).code}): is Delegate=yes set?` };
    }
    const cgroups = new CommandCgroups(directory);
    cgroups.removeLeftovers();
    return cgroups;
  }

  /** A new cgroup for one command. */
  create(): CommandCgroup {
    const path = join(this.directory, `${PREFIX}${process.pid}-${this.next++}`);
    mkdirSync(path);
    return new CommandCgroup(path);
  }

  private removeLeftovers(): void {
    for (const name of readdirSync(this.directory)) {
      if (!name.startsWith(PREFIX)) continue;
      try {
        rmdirSync(join(this.directory, name));
      } catch {
        // still populated: systemd's kill of the old agent's processes is under way
      }
    }
  }
}

export class CommandCgroup {
  private removing: Promise<void> | undefined;

  constructor(readonly path: string) {}

  /** The file the command's first process writes its pid into. */
  get procsFile(): string {
    return join(this.path, 'cgroup.procs');
  }

  /** Whether any process is in the cgroup. */
  populated(): boolean {
    return this.events().populated !== '0';
  }

  /** SIGKILL to every process in the cgroup: atomically, or frozen before kernel 5.14. */
  kill(): void {
    if (!this.write('cgroup.kill', '1')) void this.signalFrozen('SIGKILL');
  }

  /** SIGTERM to every process in the cgroup; false if it could not be sent (see signalFrozen). */
  terminate(): Promise<boolean> {
    return this.signalFrozen('SIGTERM');
  }

  /**
   * `signal` to every process in the cgroup, sent while it is frozen (see the top of the
   * file). Returns whether it was sent: a cgroup that does not freeze in time gets none.
   */
  private async signalFrozen(signal: NodeJS.Signals): Promise<boolean> {
    if (!this.populated()) return true;
    if (!this.write('cgroup.freeze', '1')) return false;
    try {
      if (!(await this.waitFor(() => this.events().frozen === '1', FREEZE_WAIT_MS))) return false;
      for (const pid of this.processes()) {
        try {
          process.kill(pid, signal);
        } catch {
          // a zombie, reaped since the list was read: nothing to stop
        }
      }
      return true;
    } finally {
      this.write('cgroup.freeze', '0');
    }
  }

  /**
   * Ends whatever is still in the cgroup and removes it: SIGTERM, then SIGKILL after
   * `graceMs` to those left. Resolves once the cgroup is gone (or cannot be removed).
   */
  remove(graceMs: number): Promise<void> {
    this.removing ??= (async () => {
      if (this.populated()) {
        await this.terminate();
        await this.waitFor(() => !this.populated(), graceMs);
        if (this.populated()) this.kill();
        await this.waitFor(() => !this.populated(), 10_000);
      }
      try {
        rmdirSync(this.path);
      } catch {
        // EBUSY: a process the kill could not end yet (uninterruptible sleep); the
        // next agent start removes it (CommandCgroups.open)
      }
    })();
    return this.removing;
  }

  private processes(): number[] {
    try {
      return readFileSync(this.procsFile, 'latin1').split('\n').filter(Boolean).map(Number);
    } catch {
      return [];
    }
  }

  private events(): Record<string, string> {
    try {
      return Object.fromEntries(
        readFileSync(join(this.path, 'cgroup.events'), 'latin1')
          .split('\n')
          .filter(Boolean)
          .map((line) => line.split(' ') as [string, string]),
      );
    } catch {
      return { populated: '0' }; // removed
    }
  }

  private write(file: string, value: string): boolean {
    try {
      writeFileSync(join(this.path, file), value);
      return true;
    } catch {
      return false;
    }
  }

  private async waitFor(condition: () => boolean, timeoutMs: number): Promise<boolean> {
    for (let waited = 0; !condition(); waited += POLL_MS) {
      if (waited >= timeoutMs) return false;
      await new Promise((resolve) => setTimeout(resolve, POLL_MS).unref());
    }
    return true;
  }
}
