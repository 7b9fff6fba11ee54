// Runs one command in its own process group and reports how it ended. Knows nothing
// of sockets or frames: the session wires its streams to the protocol.
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { accessSync, closeSync, constants, existsSync, statSync } from 'node:fs';
import { Socket } from 'node:net';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import type { ExitStatus } from '../protocol/messages.js';
import type { LocalUser } from './local-users.js';
import type { OrphanReaper } from './orphan-reaper.js';
import type { Pipe, PipePool } from './pipe-pool.js';

export interface CommandSpec {
  argv: readonly string[];
  /** Run argv[0] as a /bin/sh script; later arguments become $0, $1, ... */
  shell: boolean;
  /** Give the command a stdin pipe; otherwise its stdin is /dev/null. */
  stdin: boolean;
  /** Capture stderr; otherwise it goes to /dev/null. */
  stderr: boolean;
  /** Kill the process group after this long (ms); 0 = no limit. */
  timeoutMs: number;
  /** Time between SIGTERM and SIGKILL when the command is stopped. */
  killGraceMs: number;
  /** The user the command runs as (its HOME, USER, SHELL). */
  user: LocalUser;
  /** Switch to `user` (the agent runs as root and the user is another one). */
  switchUser: boolean;
  /** The client's name, given to the command as DISTRUN_CLIENT. */
  clientName: string;
  /** Working directory asked for by the client; default: the user's home (or /). */
  cwd?: string;
  /** Environment variables asked for by the client, on top of the clean environment. */
  env?: Readonly<Record<string, string>>;
  /** Where real pipes for stdout and stderr come from; without one (or when it is empty), socketpairs. */
  pipes?: PipePool;
  /** Stops the command's group if the agent dies without doing so. */
  reaper?: OrphanReaper;
}

/** The agent-wide helpers a command uses. */
export type CommandHelpers = Pick<CommandSpec, 'pipes' | 'reaper'>;

/** Why a command could not be started, with the exit code a shell would give. */
export interface SpawnFailure {
  reason: string;
  exitCode: number;
}

export interface CommandProcessEvents {
  /** The program could not be started; no other event follows. */
  'spawn-error': [SpawnFailure];
  /** The command ended and all its output has been read. */
  exit: [ExitStatus];
}

/**
 * A running command. `exit` fires once, after stdout and stderr have ended, so a
 * consumer that forwards every `data` chunk has forwarded all output by then.
 */
export class CommandProcess extends EventEmitter<CommandProcessEvents> {
  readonly stdout: Readable;
  readonly stderr: Readable | null;
  readonly stdin: Writable | null;

  private readonly child!: ChildProcess;
  private readonly spec: CommandSpec;
  private readonly program: string;
  private timedOut = false;
  private finished = false;
  private killTimer: NodeJS.Timeout | undefined;
  private limitTimer: NodeJS.Timeout | undefined;

  constructor(spec: CommandSpec) {
    super();
    this.spec = spec;
    const [program, ...programArgs] = spec.shell
      ? ['/bin/sh', '-c', spec.argv[0]!, ...spec.argv.slice(1)]
      : spec.argv;
    const env = { ...commandEnvironment(spec.user, spec.clientName), ...spec.env };
    let file = program!;
    let args = programArgs;
    if (spec.switchUser) {
      // setpriv switches uid, gid and the user's supplementary groups (initgroups), which
      // Node's own uid/gid options cannot do. The caller has resolved the program
      // (locateProgram), so a missing one was reported like any other spawn failure.
      file = SETPRIV;
      args = [`--reuid=${spec.user.uid}`, `--regid=${spec.user.gid}`, '--init-groups', '--', program!, ...programArgs];
    }
    // Output goes through real pipes when the pool has them, else through Node's socketpairs.
    const outPipe = spec.pipes?.take();
    const errPipe = spec.stderr ? spec.pipes?.take() : undefined;
    // detached: the child calls setsid(), so it leads a new process group that we can
    // signal as a whole (-pid) without touching the agent.
    try {
      this.child = spawn(file, args, {
        detached: true,
        stdio: [spec.stdin ? 'pipe' : 'ignore', outPipe?.writeFd ?? 'pipe', spec.stderr ? errPipe?.writeFd ?? 'pipe' : 'ignore'],
        cwd: spec.cwd ?? (existsSync(spec.user.home) ? spec.user.home : '/'),
        env,
      });
    } catch (err) {
      for (const pipe of [outPipe, errPipe]) if (pipe) closeSync(pipe.readFd);
      throw err;
    } finally {
      // The child has its copies: the command (and its descendants) alone hold the write ends.
      for (const pipe of [outPipe, errPipe]) if (pipe) closeSync(pipe.writeFd);
    }
    const readEnd = (pipe: Pipe | undefined, own: Readable | null): Readable | null =>
      (pipe ? new Socket({ fd: pipe.readFd, readable: true, writable: false }) : own);
    this.program = program!;
    this.stdout = readEnd(outPipe, this.child.stdout)!;
    this.stderr = readEnd(errPipe, this.child.stderr);
    this.stdin = this.child.stdin;
    const outputsClosed = Promise.all([this.stdout, this.stderr].map((stream) =>
      stream && new Promise<void>((resolve) => stream.once('close', () => resolve()))));
    // A command that closes its stdin early makes our writes fail with EPIPE; that is
    // the command's choice, not an error of the session.
    this.stdin?.on('error', () => {});

    this.child.once('error', (err: NodeJS.ErrnoException) => {
      if (this.child.pid !== undefined) return; // errors after spawn (e.g. kill) are not fatal
      this.finished = true;
      this.stdout.destroy();
      this.stderr?.destroy();
      this.emit('spawn-error', describeSpawnError(this.program, err));
    });
    this.child.once('spawn', () => {
      spec.reaper?.watch(this.child.pid!);
      if (spec.timeoutMs > 0) {
        this.limitTimer = setTimeout(() => {
          this.timedOut = true;
          this.stop();
        }, spec.timeoutMs);
      }
    });
    // Over when the leader has exited and its output has ended: descendants that still
    // hold the pipes keep the command running (and stoppable).
    this.child.once('close', (code, signal) => {
      if (this.child.pid === undefined) return; // spawn failed: reported above
      void outputsClosed.then(() => {
        this.finished = true;
        spec.reaper?.release(this.child.pid!);
        clearTimeout(this.limitTimer);
        clearTimeout(this.killTimer);
        const status: ExitStatus = code !== null
          ? { code, timedOut: this.timedOut }
          : { signal: signal ?? 'SIGKILL', timedOut: this.timedOut };
        this.emit('exit', status);
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Sends a signal to the whole process group. */
  signal(signal: NodeJS.Signals): void {
    const pid = this.child.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, signal);
    } catch {
      // ESRCH: the group is gone already.
    }
  }

  /**
   * SIGTERM to the group, then SIGKILL after the grace period unless the command has
   * finished. Also used after the leader exited while descendants still hold its pipes.
   */
  stop(): void {
    if (this.finished || this.killTimer) return;
    this.signal('SIGTERM');
    this.killTimer = setTimeout(() => this.signal('SIGKILL'), this.spec.killGraceMs);
    this.killTimer.unref();
  }

  /** Kills the group at once (agent shutdown, second stop request). */
  kill(): void {
    if (this.finished) return;
    this.signal('SIGKILL');
  }
}

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

// A clean environment, like a login: the agent's own variables (configuration paths,
// anything systemd passed it) are not handed to commands.
function commandEnvironment(user: LocalUser, clientName: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH || DEFAULT_PATH,
    HOME: user.home,
    USER: user.name,
    LOGNAME: user.name,
    SHELL: user.shell || '/bin/sh',
    DISTRUN_CLIENT: clientName,
  };
  for (const key of ['LANG', 'LC_ALL', 'LC_CTYPE', 'TZ']) if (process.env[key]) env[key] = process.env[key];
  return env;
}

const SETPRIV = '/usr/bin/setpriv';

/**
 * The file exec would run for `program` with the commands' PATH, or undefined when there
 * is none. Used before switching users, where the exec happens inside setpriv.
 */
export function locateProgram(program: string): string | undefined {
  const path = process.env.PATH || DEFAULT_PATH;
  const candidates = program.includes('/') ? [program] : path.split(':').filter(Boolean).map((dir) => join(dir, program));
  return candidates.find((candidate) => {
    try {
      accessSync(candidate, constants.X_OK);
      return statSync(candidate).isFile();
    } catch {
      return false;
    }
  });
}

export function describeSpawnError(file: string, err: Pick<NodeJS.ErrnoException, 'code' | 'message'>): SpawnFailure {
  switch (err.code) {
    case 'ENOENT':
      return { reason: `${file}: command not found`, exitCode: 127 };
    case 'EACCES':
    case 'EISDIR':
    case 'ENOEXEC':
      return { reason: `${file}: permission denied or not executable`, exitCode: 126 };
    default:
      return { reason: `${file}: cannot run: ${err.code ?? err.message}`, exitCode: 126 };
  }
}
