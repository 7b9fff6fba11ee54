// A command's process group, signalled only while it provably still holds a process of
// the command. A process group id is a pid: once every member has gone, the kernel may
// give the number to an unrelated process, which may make it the id of a new group
// (setsid). Signalling `-id` then would hit a stranger (pid_max is often 32768, so this
// happens within seconds on a busy host).
//
// The rule used here: the kernel never reuses a number while it is still the id of a
// group with a member, so a group whose members include a process we know to be ours —
// same pid, same start time (field 22 of /proc/PID/stat, in clock ticks since boot) — is
// ours, and so is every other member it has at that moment. We know the leader from its
// start; when it has exited, the members seen in the same event-loop turn as its exit
// (the kernel hands out pids in cycles: reusing that number in between would take a full
// cycle through pid_max), and after that, the members of any check that still found a
// known one. A check that finds none of them means the group is gone for good.
import { readdirSync, readFileSync } from 'node:fs';

interface ProcessEntry {
  pid: number;
  /** Process group id. */
  group: number;
  /** Start time in clock ticks since boot: with the pid, the process's identity. */
  start: string;
}

/** One process's entry, or undefined when it does not exist (any more). */
function processEntry(pid: number): ProcessEntry | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  // "PID (COMM) STATE PPID PGRP ...": COMM may hold spaces and parentheses.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const group = Number(fields[2]);
  const start = fields[19];
  return Number.isInteger(group) && start ? { pid, group, start } : undefined;
}

/** Every process now in group `id`. */
function groupMembers(id: number): ProcessEntry[] {
  const members: ProcessEntry[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const entry = processEntry(Number(name));
    if (entry?.group === id) members.push(entry);
  }
  return members;
}

/** Whether any process is in group `id` (cheap: no scan of /proc). */
function hasMembers(id: number): boolean {
  try {
    process.kill(-id, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class ProcessGroup {
  /** Known members: pid -> start time. */
  private members = new Map<number, string>();
  private gone = false;

  /** `id`: the pid of the process that made the group (setsid), just started. */
  constructor(readonly id: number) {
    const leader = processEntry(id);
    if (leader) this.members.set(id, leader.start);
    else this.gone = true;
  }

  /** The leader has exited (reaped just now): its surviving members take over as proof. */
  leaderExited(): void {
    if (this.gone) return;
    this.adopt(hasMembers(this.id) ? groupMembers(this.id) : []);
  }

  /** Whether the group still holds a process we know is ours; learns its current members. */
  isOurs(): boolean {
    if (this.gone) return false;
    const leaderStart = this.members.get(this.id);
    if (leaderStart !== undefined && processEntry(this.id)?.start === leaderStart) return true;
    const current = hasMembers(this.id) ? groupMembers(this.id) : [];
    if (!current.some((m) => this.members.get(m.pid) === m.start)) {
      this.gone = true;
      this.members.clear();
      return false;
    }
    this.adopt(current);
    return true;
  }

  /** The known members, for the orphan reaper (`pid:start` each). */
  get knownMembers(): ReadonlyArray<[number, string]> {
    return [...this.members];
  }

  /** Sends `signal` to the whole group if it is still ours; returns whether it was sent. */
  signal(signal: NodeJS.Signals): boolean {
    if (!this.isOurs()) return false;
    try {
      process.kill(-this.id, signal);
      return true;
    } catch {
      return false; // ESRCH: gone since the check
    }
  }

  private adopt(current: ProcessEntry[]): void {
    this.members = new Map(current.map((m) => [m.pid, m.start]));
    if (this.members.size === 0) this.gone = true;
  }
}
