// How a command is started: what the agent executes, with which arguments and which
// environment, so that nothing the client chose is seen by a process that still has the
// agent's privileges. Pure: it builds the plan, command-process.ts runs it.
//
// With the native spawn (native/spawn.c) the child itself takes on the user, enters the
// directory and finds the program, in that order, as the launcher below does; its plan
// (directLaunch) is the program, the whole environment and what the child needs for
// those steps. Node's child_process and node-pty cannot run code between fork and exec,
// so for them the agent executes the launcher (launchPlan):
//
// The agent executes setpriv (when the command runs as another user) with the agent's
// clean environment only. setpriv drops privileges and executes a short /bin/sh script,
// the launcher, which then, as the run-as user:
//   1. exports the client's variables (which travel under names of the agent's own,
//      DISTRUN_ENV_0..n, so neither the dynamic loader nor setpriv acts on them),
//   2. enters the working directory (the client's, else the user's home, else /),
//   3. finds the program in PATH, and
//   4. replaces itself with the program (same pid: the process group, signals and exit
//      status are the program's).
// With a cgroup for the command (command-cgroup.ts), a /bin/sh runs first, still as
// root with the same clean environment: it writes its own pid into the cgroup and then
// executes setpriv (same pid), so the command and all it starts are inside before any
// program the client chose runs.
// Steps 2 and 3 failing are reported on descriptor 3 (when the agent gave one) as one
// word, and end the launcher with the shell's codes (126, 127); the agent turns them into
// the usual spawn failures. They run as the user, so a client learns nothing about
// directories or programs the user may not reach. Variable names are checked against
// ENV_NAME_PATTERN by the protocol layer before they get here.
import { ENV_NAME_PATTERN } from '../protocol/constants.js';
import type { SpawnSteps } from './native-spawn.js';

const SETPRIV = '/usr/bin/setpriv';
const SHELL = '/bin/sh';

const LAUNCHER = `set -f
DISTRUN_N=$1; shift; DISTRUN_I=0
while [ "$DISTRUN_I" -lt "$DISTRUN_N" ]; do
  case $1 in ''|[0-9]*|*[!A-Za-z0-9_]*) exit 126 ;; esac
  eval "export $1=\\"\\$DISTRUN_ENV_$DISTRUN_I\\"; unset DISTRUN_ENV_$DISTRUN_I"
  DISTRUN_I=$((DISTRUN_I + 1)); shift
done
report() {
  if [ -n "$DISTRUN_STATUS_FD" ]; then printf '%s\\n' "$1" >&3; else printf 'distrun: %s\\n' "$2" >&2; fi
  exit "$3"
}
if [ -n "\${DISTRUN_CWD+set}" ]; then
  cd -P -- "$DISTRUN_CWD" 2>/dev/null || report cwd "cannot use working directory $DISTRUN_CWD" 126
else
  cd -P -- "$HOME" 2>/dev/null || cd /
fi
DISTRUN_PROGRAM=$1; shift
case $DISTRUN_PROGRAM in
  */*) DISTRUN_FOUND=$DISTRUN_PROGRAM ;;
  *)
    DISTRUN_FOUND=
    IFS=:
    for DISTRUN_DIR in $PATH; do
      if [ -n "$DISTRUN_DIR" ] && [ -f "$DISTRUN_DIR/$DISTRUN_PROGRAM" ] && [ -x "$DISTRUN_DIR/$DISTRUN_PROGRAM" ]; then
        DISTRUN_FOUND=$DISTRUN_DIR/$DISTRUN_PROGRAM; break
      fi
    done
    unset IFS ;;
esac
[ -n "$DISTRUN_FOUND" ] && [ -e "$DISTRUN_FOUND" ] || report notfound "$DISTRUN_PROGRAM: command not found" 127
[ -f "$DISTRUN_FOUND" ] && [ -x "$DISTRUN_FOUND" ] || report noexec "$DISTRUN_PROGRAM: permission denied or not executable" 126
[ -n "$DISTRUN_STATUS_FD" ] && exec 3>&-
set -- "$DISTRUN_FOUND" "$@"
unset DISTRUN_N DISTRUN_I DISTRUN_CWD DISTRUN_STATUS_FD DISTRUN_PROGRAM DISTRUN_FOUND DISTRUN_DIR
exec "$@"`;

// $0: the cgroup's cgroup.procs; then the command line to execute.
const ENTER_CGROUP = `echo $$ >"$0" || { [ -n "$DISTRUN_STATUS_FD" ] && echo cgroup >&3; exit 126; }
exec "$@"`;

interface LaunchRequest {
  /** The program (as the policy matched it) and its arguments. */
  argv: readonly string[];
  /** The environment the agent gives every command (commandEnvironment). */
  baseEnv: Readonly<Record<string, string>>;
  /** The client's variables, already checked against the refused ones. */
  clientEnv: Readonly<Record<string, string>>;
  /** The client's working directory; undefined: the user's home. */
  cwd: string | undefined;
  /** Switch to this uid and gid, with the user's groups (the agent runs as root). */
  switchTo?: { name: string; uid: number; gid: number };
  /** Descriptor 3 is a pipe to the agent for the launcher's report. */
  statusFd: boolean;
  /** The cgroup.procs file of the command's cgroup, entered first (as root). */
  cgroupProcs?: string;
}

export interface LaunchPlan {
  file: string;
  args: string[];
  env: Record<string, string>;
}

export function launchPlan(request: LaunchRequest): LaunchPlan {
  const names = checkedNames(request.clientEnv);
  const env: Record<string, string> = { ...request.baseEnv };
  names.forEach((name, i) => {
    env[`DISTRUN_ENV_${i}`] = request.clientEnv[name]!;
  });
  if (request.cwd !== undefined) env.DISTRUN_CWD = request.cwd;
  if (request.statusFd) env.DISTRUN_STATUS_FD = '3';
  let command = [SHELL, '-c', LAUNCHER, 'distrun-launch', String(names.length), ...names, ...request.argv];
  if (request.switchTo) {
    const { uid, gid } = request.switchTo;
    // setpriv switches uid, gid and the user's supplementary groups (initgroups), which
    // Node's own uid/gid options cannot do.
    command = [SETPRIV, `--reuid=${uid}`, `--regid=${gid}`, '--init-groups', '--', ...command];
  }
  if (request.cgroupProcs !== undefined) command = [SHELL, '-c', ENTER_CGROUP, request.cgroupProcs, ...command];
  return { file: command[0]!, args: command.slice(1), env };
}

/** What the native spawn's child is given (NativeSpawn.spawn's arguments but the descriptors). */
export interface DirectLaunch {
  /** The program as asked: a path, or a name the child looks up in `path`. */
  file: string;
  argv: string[];
  /** "NAME=value": the agent's clean environment with the client's variables. */
  env: string[];
  /** What the child does before it executes the program, in this order. */
  steps: SpawnSteps;
}

/** The plan for the native spawn: the launcher's steps, without a shell. */
export function directLaunch(request: Omit<LaunchRequest, 'statusFd'>): DirectLaunch {
  const { HOME: home = '/', PATH: path = '' } = request.baseEnv;
  const env = new Map(Object.entries(request.baseEnv));
  for (const name of checkedNames(request.clientEnv)) env.set(name, request.clientEnv[name]!);
  // The child sets these as `cd -P` does in the launcher, whatever a client sent.
  for (const name of ['PWD', 'OLDPWD']) env.delete(name);
  return {
    file: request.argv[0]!,
    argv: [...request.argv],
    env: [...env].map(([name, value]) => `${name}=${value}`),
    steps: {
      ...(request.cgroupProcs !== undefined && { cgroupProcs: request.cgroupProcs }),
      ...(request.switchTo && { user: request.switchTo }),
      ...(request.cwd !== undefined && { cwd: request.cwd }),
      home,
      path,
    },
  };
}

function checkedNames(clientEnv: Readonly<Record<string, string>>): string[] {
  const names = Object.keys(clientEnv);
  for (const name of names) if (!ENV_NAME_PATTERN.test(name)) throw new Error(`invalid variable name ${JSON.stringify(name)}`);
  return names;
}

/** What the launcher's one-word report on descriptor 3 means. */
export function launchFailure(
  report: string,
  program: string,
  cwd: string | undefined,
  user: string,
): { reason: string; exitCode: number } | undefined {
  switch (report.trim()) {
    case '':
      return undefined;
    case 'cwd':
      return { reason: `cannot use working directory ${cwd}: it does not exist, is not a directory, or ${user} may not enter it`, exitCode: 126 };
    case 'notfound':
      return { reason: `${program}: command not found`, exitCode: 127 };
    case 'noexec':
      return { reason: `${program}: permission denied or not executable`, exitCode: 126 };
    case 'cgroup':
      return { reason: `${program}: cannot be started: the agent cannot place it in a cgroup of its own`, exitCode: 126 };
    case 'credentials':
      return { reason: `${program}: cannot be started: the agent cannot switch to ${user} (its groups, gid or uid)`, exitCode: 126 };
    default:
      return { reason: `${program}: cannot be started`, exitCode: 126 };
  }
}
