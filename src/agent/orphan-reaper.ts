// Commands must not outlive an agent that dies without stopping them (SIGKILL, OOM
// killer, a crash): their output and exit status could reach nobody. Each command leads
// its own process group; a small helper shell started once learns every group as it
// starts, the processes that prove it is ours (pid and start time, see process-group.ts)
// whenever they change, and when it ends. When the agent dies, the helper's input ends:
// it sends SIGTERM to each group that still holds one of those processes and, after the
// grace period, SIGKILL to those that still do. A group whose processes are all gone is
// never signalled: its id may belong to a stranger by then.
//
// Under systemd the unit's cgroup does the same (KillMode=mixed) and also catches
// processes that left their group (setsid); the helper covers agents started any other
// way. Like pdeathsig, but for the whole group and not only its leader.
// (`kill -TERM -PGID` without `--`: dash's kill does not take `--`.)
import { spawn, type ChildProcess } from 'node:child_process';
import type { ProcessGroup } from './process-group.js';

// Input lines: "+ ID PID:START..." and "= ID PID:START..." (the group and the processes
// that prove it is ours), "- ID" (the command has ended). Kept as lines "ID PID START".
const HELPER = `grace=$1
trap '' INT HUP
set -f
nl='
'
known=
forget() {
  kept=
  IFS=$nl
  for line in $known; do case $line in "$1 "*) ;; *) kept="$kept$line$nl" ;; esac; done
  unset IFS
  known=$kept
}
while IFS=' ' read -r op id members; do
  case $op in
    +|=) forget "$id"; for m in $members; do known="$known$id \${m%%:*} \${m#*:}$nl"; done ;;
    -) forget "$id" ;;
  esac
done
# Is process $2 alive, still in group $1, with start time $3?
alive() {
  read -r stat < "/proc/$2/stat" 2>/dev/null || return 1
  group=$1 start=$3
  set -- \${stat##*) }
  [ "$3" = "$group" ] && [ "\${20}" = "$start" ]
}
# The groups that still hold a known process of theirs.
ours() {
  found=
  IFS=$nl
  for line in $known; do
    unset IFS
    set -- $line
    case " $found " in *" $1 "*) ;; *) alive "$1" "$2" "$3" && found="$found $1" ;; esac
    IFS=$nl
  done
  unset IFS
  echo $found
}
groups=$(ours)
[ -z "$groups" ] && exit 0
for id in $groups; do kill -TERM "-$id" 2>/dev/null; done
while [ "$grace" -gt 0 ]; do
  sleep 1
  groups=$(ours)
  [ -z "$groups" ] && exit 0
  grace=$((grace - 1))
done
for id in $(ours); do kill -KILL "-$id" 2>/dev/null; done`;

export class OrphanReaper {
  private readonly helper: ChildProcess;
  private broken = false;

  /** `graceSeconds`: between the SIGTERM and the SIGKILL the helper sends. */
  constructor(
    graceSeconds: number,
    private readonly onBroken: (reason: string) => void,
  ) {
    // Its own session: a Ctrl-C meant for an agent run in a terminal does not reach it.
    this.helper = spawn('/bin/sh', ['-c', HELPER, 'sh', String(graceSeconds)], { stdio: ['pipe', 'ignore', 'ignore'], detached: true });
    this.helper.once('error', (err) => this.fail(`cannot start /bin/sh: ${err.message}`));
    this.helper.once('exit', () => this.fail('the helper has exited'));
    // Out of descriptors (EMFILE) there is no process and no pipe; 'error' follows.
    if (!this.helper.stdin) this.fail('cannot start /bin/sh: out of file descriptors');
    this.helper.stdin?.on('error', () => this.fail('the helper has exited'));
    this.helper.unref();
  }

  /** A command's process group has started. */
  watch(group: ProcessGroup): void {
    this.tell(`+ ${proof(group)}\n`);
  }

  /** The processes that prove the group is ours have changed (its leader has exited, say). */
  update(group: ProcessGroup): void {
    this.tell(`= ${proof(group)}\n`);
  }

  /** The group's command has ended: forget it. */
  release(group: ProcessGroup): void {
    this.tell(`- ${group.id}\n`);
  }

  /** Normal shutdown: every command has ended; the helper exits. */
  close(): void {
    this.broken = true;
    this.helper.stdin?.end();
  }

  private tell(line: string): void {
    if (!this.broken) this.helper.stdin!.write(line);
  }

  private fail(reason: string): void {
    if (this.broken) return;
    this.broken = true;
    this.onBroken(reason);
  }
}

function proof(group: ProcessGroup): string {
  return [group.id, ...group.knownMembers.map(([pid, start]) => `${pid}:${start}`)].join(' ');
}
