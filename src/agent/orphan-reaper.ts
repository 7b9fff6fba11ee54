// Commands must not outlive an agent that dies without stopping them (SIGKILL, OOM
// killer, a crash): their output and exit status could reach nobody. Each command leads
// its own process group; a small helper shell started once learns every group as it
// starts ("+ PGID") and ends ("- PGID"). When the agent dies, the helper's input ends:
// it sends SIGTERM to each group still listed and, after the grace period, SIGKILL.
//
// Under systemd the unit's cgroup does the same (KillMode=mixed) and also catches
// processes that left their group (setsid); the helper covers agents started any other
// way. Like pdeathsig, but for the whole group and not only its leader.
// (`kill -TERM -PGID` without `--`: dash's kill does not take `--`.)
import { spawn, type ChildProcess } from 'node:child_process';

const HELPER = `grace=$1
trap '' INT HUP
groups=' '
while IFS=' ' read -r op id; do
  case $op in
    +) groups="$groups$id " ;;
    -) case $groups in *" $id "*) groups="\${groups%% $id *} \${groups#* $id }" ;; esac ;;
  esac
done
set -- $groups
[ $# -eq 0 ] && exit 0
for id; do kill -TERM "-$id" 2>/dev/null; done
while [ "$grace" -gt 0 ]; do
  alive=
  for id; do kill -0 "-$id" 2>/dev/null && alive=1; done
  [ -z "$alive" ] && exit 0
  sleep 1
  grace=$((grace - 1))
done
for id; do kill -KILL "-$id" 2>/dev/null; done`;

export class OrphanReaper {
  private readonly helper: ChildProcess;
  private broken = false;

  /** `graceSeconds`: between the SIGTERM and the SIGKILL the helper sends. */
  constructor(graceSeconds: number, private readonly onBroken: (reason: string) => void) {
    // Its own session: a Ctrl-C meant for an agent run in a terminal does not reach it.
    this.helper = spawn('/bin/sh', ['-c', HELPER, 'sh', String(graceSeconds)], { stdio: ['pipe', 'ignore', 'ignore'], detached: true });
    this.helper.once('error', (err) => this.fail(`cannot start /bin/sh: ${err.message}`));
    this.helper.once('exit', () => this.fail('the helper has exited'));
    this.helper.stdin!.on('error', () => this.fail('the helper has exited'));
    this.helper.unref();
  }

  /** A command's process group has started. */
  watch(pgid: number): void {
    this.tell(`+ ${pgid}\n`);
  }

  /** The group's command has ended: its id may be reused, so forget it. */
  release(pgid: number): void {
    this.tell(`- ${pgid}\n`);
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
