// Runs one command in its own process group and reports how it ended. Knows nothing
// of sockets or frames: the session wires its streams to the protocol.
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { accessSync, closeSync, constants, existsSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Socket } from 'node:net';
import { constants as osConstants } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable, type Readable } from 'node:stream';
import type { ExitStatus, WindowSize } from '../protocol/messages.js';
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
  /** Run in a pseudo-terminal of this size (node-pty); stdin, stdout and stderr are the terminal. */
  pty?: WindowSize & { term: string };
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

  private readonly spec: CommandSpec;
  /** The command's pid, which is also its process group's id; set once it runs. */
  private groupId: number | undefined;
  private terminal: import('node-pty').IPty | undefined;
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
    const cwd = spec.cwd ?? (existsSync(spec.user.home) ? spec.user.home : '/');
    this.program = program!;
    const started = spec.pty ? this.startInTerminal(file, args, env, cwd, spec.pty) : this.startWithPipes(file, args, env, cwd);
    ({ stdout: this.stdout, stderr: this.stderr, stdin: this.stdin } = started);
    // A command that closes its stdin early makes our writes fail with EPIPE; that is
    // the command's choice, not an error of the session.
    this.stdin?.on('error', () => {});
  }

  private startWithPipes(file: string, args: string[], env: NodeJS.ProcessEnv, cwd: string): CommandStreams {
    const { spec } = this;
    // Output goes through real pipes when the pool has them, else through Node's socketpairs.
    const outPipe = spec.pipes?.take();
    const errPipe = spec.stderr ? spec.pipes?.take() : undefined;
    let child: ChildProcess;
    // detached: the child calls setsid(), so it leads a new process group that we can
    // signal as a whole (-pid) without touching the agent.
    try {
      child = spawn(file, args, {
        detached: true,
        stdio: [spec.stdin ? 'pipe' : 'ignore', outPipe?.writeFd ?? 'pipe', spec.stderr ? errPipe?.writeFd ?? 'pipe' : 'ignore'],
        cwd,
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
    const stdout = readEnd(outPipe, child.stdout)!;
    const stderr = readEnd(errPipe, child.stderr);
    const outputsClosed = Promise.all([stdout, stderr].map((stream) =>
      stream && new Promise<void>((resolve) => stream.once('close', () => resolve()))));

    child.once('error', (err: NodeJS.ErrnoException) => {
      if (child.pid !== undefined) return; // errors after spawn (e.g. kill) are not fatal
      this.finished = true;
      stdout.destroy();
      stderr?.destroy();
      this.emit('spawn-error', describeSpawnError(this.program, err));
    });
    child.once('spawn', () => this.started(child.pid!));
    // Over when the leader has exited and its output has ended: descendants that still
    // hold the pipes keep the command running (and stoppable).
    child.once('close', (code, signal) => {
      if (child.pid === undefined) return; // spawn failed: reported above
      void outputsClosed.then(() => this.ended(code, signal));
    });
    return { stdout, stderr, stdin: child.stdin };
  }

  // node-pty forks a child that calls setsid() and takes the terminal as its controlling
  // one: it leads its own process group, as with pipes. Loaded only for terminal sessions.
  private startInTerminal(file: string, args: string[], env: NodeJS.ProcessEnv, cwd: string, size: WindowSize & { term: string }): CommandStreams {
    const stdout = new PassThrough();
    const stdin = new Writable({
      write: (chunk: Buffer, _encoding, done) => {
        this.terminal?.write(chunk);
        done();
      },
      // End of input means nothing to a terminal (Ctrl-D is a byte the user types).
      final: (done) => done(),
    });
    let pty: typeof import('node-pty');
    try {
      pty = requireHere('node-pty') as typeof import('node-pty');
    } catch {
      this.finished = true;
      queueMicrotask(() => this.emit('spawn-error', {
        reason: 'this agent cannot run terminal sessions: node-pty is not installed (npm install node-pty)', exitCode: 126,
      }));
      return { stdout, stderr: null, stdin };
    }
    let terminal: import('node-pty').IPty;
    try {
      terminal = pty.spawn(file, args, { name: size.term, cols: size.cols, rows: size.rows, cwd, env: { ...env, TERM: size.term }, encoding: null });
    } catch (err) {
      this.finished = true;
      queueMicrotask(() => this.emit('spawn-error', describeSpawnError(this.program, err as NodeJS.ErrnoException)));
      return { stdout, stderr: null, stdin };
    }
    this.terminal = terminal;
    // The session pauses stdout when its client reads slowly; the terminal then waits.
    terminal.onData((data) => {
      if (!stdout.write(data)) terminal.pause();
    });
    stdout.on('drain', () => terminal.resume());
    terminal.onExit(({ exitCode, signal }) => {
      stdout.end();
      const signalName = signal ? signalNameOf(signal) : undefined;
      void new Promise((resolve) => stdout.once('end', resolve)).then(() =>
        this.ended(signalName ? null : exitCode, signalName ?? null));
    });
    this.started(terminal.pid);
    return { stdout, stderr: null, stdin };
  }

  private started(pid: number): void {
    this.groupId = pid;
    this.spec.reaper?.watch(pid);
    if (this.spec.timeoutMs > 0) {
      this.limitTimer = setTimeout(() => {
        this.timedOut = true;
        this.stop();
      }, this.spec.timeoutMs);
    }
  }

  private ended(code: number | null, signal: NodeJS.Signals | null): void {
    this.finished = true;
    if (this.groupId !== undefined) this.spec.reaper?.release(this.groupId);
    clearTimeout(this.limitTimer);
    clearTimeout(this.killTimer);
    const status: ExitStatus = code !== null
      ? { code, timedOut: this.timedOut }
      : { signal: signal ?? 'SIGKILL', timedOut: this.timedOut };
    this.emit('exit', status);
  }

  /** The terminal's new size (terminal sessions only; ignored otherwise). */
  resize(size: WindowSize): void {
    this.terminal?.resize(size.cols, size.rows);
  }

  get pid(): number | undefined {
    return this.groupId;
  }

  /** Sends a signal to the whole process group. */
  signal(signal: NodeJS.Signals): void {
    const pid = this.groupId;
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

interface CommandStreams {
  stdout: Readable;
  stderr: Readable | null;
  stdin: Writable | null;
}

function signalNameOf(signal: number): NodeJS.Signals | undefined {
  return (Object.entries(osConstants.signals) as Array<[NodeJS.Signals, number]>).find(([, n]) => n === signal)?.[0];
}

// node-pty is optional and CommonJS: required on the first terminal session, not at start-up.
const requireHere = createRequire(import.meta.url);

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
