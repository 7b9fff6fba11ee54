// Runs one command in its own process group and reports how it ended. Knows nothing
// of sockets or frames: the session wires its streams to the protocol.
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { closeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Socket } from 'node:net';
import { constants as osConstants } from 'node:os';
import { PassThrough, Writable, type Readable } from 'node:stream';
import type { ExitStatus, LeaderExit, WindowSize } from '../protocol/messages.js';
import { setLongTimeout, type LongTimer } from '../timers.js';
import type { CommandCgroup, CommandCgroups } from './command-cgroup.js';
import { commandEnvironment } from './command-environment.js';
import { directLaunch, launchFailure, launchPlan, type DirectLaunch, type LaunchPlan } from './command-launch.js';
import type { LocalUser } from './local-users.js';
import type { OrphanReaper } from './orphan-reaper.js';
import type { NativeSpawn, NativeSpawnError } from './native-spawn.js';
import type { Pipe, PipePool } from './pipe-pool.js';
import { ProcessGroup } from './process-group.js';

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
  /** Environment variables asked for by the client (already checked), on top of the clean environment. */
  env?: Readonly<Record<string, string>>;
  /** Where real pipes for stdout and stderr come from; without one (or when it is empty), socketpairs. */
  pipes?: PipePool;
  /** Stops the command's group if the agent dies without doing so. */
  reaper?: OrphanReaper;
  /** Where the command gets a cgroup of its own, which follows descendants that leave its group. */
  cgroups?: CommandCgroups;
  /** Run in a pseudo-terminal of this size (node-pty); stdin, stdout and stderr are the terminal. */
  pty?: WindowSize & { term: string };
  /** Start commands without forking the agent (native-spawn.ts); without it, Node's child_process. */
  spawner?: NativeSpawn;
}

/** The agent-wide helpers a command uses. */
export type CommandHelpers = Pick<CommandSpec, 'pipes' | 'reaper' | 'cgroups' | 'spawner'>;

/** Why a command could not be started, with the exit code a shell would give. */
interface SpawnFailure {
  reason: string;
  exitCode: number;
}

interface CommandProcessEvents {
  /** The program could not be started; no other event follows. */
  'spawn-error': [SpawnFailure];
  /** The command ended and all its output has been read (or discarded). */
  exit: [ExitStatus];
  /** The leader exited, and a moment later its output is still open: processes it left behind hold it. */
  'output-held': [LeaderExit];
}

/** While the leader is gone and others of its group run on, their membership is checked this often. */
const MEMBERSHIP_REFRESH_MS = 2000;
/**
 * How long after the leader's exit its output may still be arriving before it counts as
 * held open: the end of a pipe is often seen a little after the exit of its last writer.
 */
const HELD_OUTPUT_MS = 500;

/**
 * A running command. `exit` fires once, after stdout and stderr have ended, so a
 * consumer that forwards every `data` chunk has forwarded all output by then.
 */
export class CommandProcess extends EventEmitter<CommandProcessEvents> {
  readonly stdout: Readable;
  readonly stderr: Readable | null;
  readonly stdin: Writable | null;

  private readonly spec: CommandSpec;
  /** The command's process group (its id is the command's pid); set once it runs. */
  private group: ProcessGroup | undefined;
  /** The command's cgroup, when the agent has them: stopping and killing go through it. */
  private readonly cgroup: CommandCgroup | undefined;
  private terminal: import('node-pty').IPty | undefined;
  /** The launcher's report on descriptor 3 (pipes only). */
  private status: Readable | null = null;
  private readonly program: string;
  private timedOut = false;
  private finished = false;
  private stopping = false;
  private killTimer: NodeJS.Timeout | undefined;
  private limitTimer: LongTimer | undefined;
  private refreshTimer: NodeJS.Timeout | undefined;
  /** Set once the leader has exited: reports output still held open (watchHeldOutput). */
  private checkHeldOutput: (() => void) | undefined;

  constructor(spec: CommandSpec) {
    super();
    this.spec = spec;
    const argv = spec.shell ? ['/bin/sh', '-c', spec.argv[0]!, ...spec.argv.slice(1)] : [...spec.argv];
    this.program = argv[0]!;
    let cgroupError: NodeJS.ErrnoException | undefined;
    try {
      this.cgroup = spec.cgroups?.create();
    } catch (err) {
      cgroupError = err as NodeJS.ErrnoException;
    }
    const request = {
      argv,
      baseEnv: commandEnvironment(spec.user, spec.clientName),
      clientEnv: spec.env ?? {},
      cwd: spec.cwd,
      cgroupProcs: this.cgroup?.procsFile,
    };
    const switchTo = spec.switchUser ? { name: spec.user.name, uid: spec.user.uid, gid: spec.user.gid } : undefined;
    const plan = (statusFd: boolean): LaunchPlan => launchPlan({ ...request, switchTo, statusFd });
    // Without its cgroup the command would not be contained as promised: it does not run.
    const started = cgroupError
      ? this.notStarted({
          reason: `${this.program}: cannot be started: the agent cannot make a cgroup for it (${cgroupError.code ?? cgroupError.message})`,
          exitCode: 126,
        })
      : spec.pty
        ? this.startInTerminal(plan(false), spec.pty)
        : this.startWithPipes(
            spec.spawner,
            () => directLaunch({ ...request, switchTo }),
            () => plan(true),
          );
    ({ stdout: this.stdout, stderr: this.stderr, stdin: this.stdin } = started);
    // Errors on the command's streams (EPIPE when it closed its stdin early, ECONNRESET
    // on a socketpair) end nothing but that stream: the command's exit is what counts.
    for (const stream of [this.stdout, this.stderr, this.stdin, this.status]) stream?.on('error', () => {});
  }

  /** With the native spawn (the child does the launcher's steps) or with Node's spawn and the launcher. */
  private startWithPipes(spawner: NativeSpawn | undefined, direct: () => DirectLaunch, launcher: () => LaunchPlan): CommandStreams {
    let launched: Launched;
    // What the agent executes, named when that fails: the program itself, or the launcher.
    let file = this.program;
    try {
      if (spawner) {
        launched = launchNative(spawner, direct(), this.spec);
      } else {
        const plan = launcher();
        file = plan.file;
        launched = launchWithNode(plan, this.spec);
      }
    } catch (err) {
      const { step } = err as Partial<NativeSpawnError>;
      const failure =
        (step && LAUNCHER_STEPS.has(step) && launchFailure(step, this.program, this.spec.cwd, this.spec.user.name)) ||
        spawnFailure(this.program, file, err as NodeJS.ErrnoException);
      return this.notStarted(failure);
    }
    const { stdout, stderr, status } = launched;
    this.status = status;
    let report = '';
    status?.on('data', (chunk: Buffer) => {
      if (report.length < 64) report += chunk.toString('latin1');
    });
    const closed = (stream: Readable | null): Promise<void> | null => stream && new Promise<void>((resolve) => stream.once('close', () => resolve()));
    const outputsClosed = Promise.all([stdout, stderr, status].map(closed));
    launched.watch({
      started: (pid) => this.started(pid),
      failed: (err) => {
        this.finished = true;
        for (const stream of [stdout, stderr, status]) stream?.destroy();
        this.release();
        this.emit('spawn-error', spawnFailure(this.program, file, err));
      },
      exited: (code, signal) => {
        this.leaderExited();
        this.watchHeldOutput(outputsClosed, [stdout, stderr], code !== null ? { code } : { signal: signal ?? 'SIGKILL' });
        // Over when the leader has exited and its output has ended: descendants that still
        // hold the pipes keep the command running (and stoppable).
        void outputsClosed.then(() => {
          const failure = launchFailure(report, this.program, this.spec.cwd, this.spec.user.name);
          if (failure) {
            this.release();
            this.emit('spawn-error', failure);
          } else {
            this.ended(code, signal);
          }
        });
      },
    });
    return { stdout, stderr, stdin: launched.stdin };
  }

  // node-pty forks a child that calls setsid() and takes the terminal as its controlling
  // one: it leads its own process group, as with pipes. Loaded only for terminal sessions.
  // There is no descriptor 3 here: the launcher's failures go to the terminal.
  private startInTerminal(plan: LaunchPlan, size: WindowSize & { term: string }): CommandStreams {
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
      return this.notStarted({
        reason: 'this agent cannot run terminal sessions: node-pty is not installed (npm install node-pty)',
        exitCode: 126,
      });
    }
    let terminal: import('node-pty').IPty;
    try {
      terminal = pty.spawn(plan.file, plan.args, {
        name: size.term,
        cols: size.cols,
        rows: size.rows,
        cwd: '/',
        env: { ...plan.env, TERM: size.term },
        encoding: null,
      });
    } catch (err) {
      return this.notStarted(spawnFailure(this.program, plan.file, err as NodeJS.ErrnoException));
    }
    this.terminal = terminal;
    // The session pauses stdout when its client reads slowly; the terminal then waits.
    terminal.onData((data) => {
      if (!stdout.write(data)) terminal.pause();
    });
    stdout.on('drain', () => terminal.resume());
    terminal.onExit(({ exitCode, signal }) => {
      this.leaderExited();
      stdout.end();
      const signalName = signal ? signalNameOf(signal) : undefined;
      void new Promise((resolve) => stdout.once('close', resolve)).then(() => this.ended(signalName ? null : exitCode, signalName ?? null));
    });
    this.started(terminal.pid);
    return { stdout, stderr: null, stdin };
  }

  /** The command could not be started: `spawn-error` once the caller listens, and empty streams. */
  private notStarted(failure: SpawnFailure): CommandStreams {
    this.finished = true;
    this.release();
    queueMicrotask(() => this.emit('spawn-error', failure));
    const stdout = new PassThrough();
    stdout.end();
    return { stdout, stderr: null, stdin: null };
  }

  private started(pid: number): void {
    this.group = new ProcessGroup(pid);
    this.spec.reaper?.watch(this.group);
    if (this.spec.timeoutMs > 0) {
      this.limitTimer = setLongTimeout(() => {
        this.timedOut = true;
        // What the time limit is about to end may be output held open: that is said first.
        this.checkHeldOutput?.();
        this.stop();
      }, this.spec.timeoutMs);
    }
  }

  // The leader has just been reaped: whoever is left in its group now proves the group
  // ours from here on (process-group.ts), and is checked again while the command runs.
  private leaderExited(): void {
    const { group } = this;
    if (!group) return;
    group.leaderExited();
    if (!group.isOurs()) return;
    this.spec.reaper?.update(group);
    this.refreshTimer = setInterval(() => {
      if (group.isOurs()) this.spec.reaper?.update(group);
    }, MEMBERSHIP_REFRESH_MS);
    this.refreshTimer.unref();
  }

  /**
   * After the leader's exit: output still open HELD_OUTPUT_MS later (and not merely
   * waiting behind a slow client, which pauses the streams) is held by descendants
   * (`sh -c 'daemon & echo started'`): `output-held` says so, once. A loaded agent can
   * run the timer before it has read an EOF that is already there (libuv runs timers
   * before polling), so the verdict waits for one more poll (setImmediate) and holds
   * only if no stream ended and no byte arrived meanwhile.
   */
  private watchHeldOutput(closed: Promise<unknown>, streams: ReadonlyArray<Readable | null>, leader: LeaderExit): void {
    let over = false;
    let timer: NodeJS.Timeout | undefined;
    const open = streams.filter((stream): stream is Readable => stream !== null);
    const bytesRead = (): number => open.reduce((sum, stream) => sum + ((stream as Socket).bytesRead ?? 0), 0);
    const stillHeld = (): boolean => !over && !this.finished && open.some((stream) => !stream.readableEnded);
    const later = (): void => {
      timer = setTimeout(check, HELD_OUTPUT_MS).unref();
    };
    const check = (): void => {
      clearTimeout(timer);
      if (!stillHeld()) return;
      if (open.some((stream) => stream.isPaused())) return later();
      const before = bytesRead();
      setImmediate(() => {
        if (!stillHeld()) return;
        if (bytesRead() !== before || open.some((stream) => stream.isPaused())) return later();
        over = true;
        this.emit('output-held', leader);
      });
    };
    later();
    this.checkHeldOutput = check;
    void closed.then(() => {
      over = true;
      clearTimeout(timer);
    });
  }

  private ended(code: number | null, signal: NodeJS.Signals | null): void {
    this.finished = true;
    this.limitTimer?.clear();
    // A command being stopped keeps its SIGKILL for whoever of its group ignored the
    // SIGTERM (descendants of a leader that exited); the group is let go after that.
    if (!this.killTimer) this.release();
    const status: ExitStatus = code !== null ? { code, timedOut: this.timedOut } : { signal: signal ?? 'SIGKILL', timedOut: this.timedOut };
    this.emit('exit', status);
  }

  /**
   * Forgets the group: nothing will signal it any more. What is left in the command's
   * cgroup (descendants that left the group and closed their output) is ended now —
   * SIGTERM, SIGKILL after the grace period — and the cgroup removed.
   */
  private release(): void {
    clearInterval(this.refreshTimer);
    clearTimeout(this.killTimer);
    this.killTimer = undefined;
    if (this.group) this.spec.reaper?.release(this.group);
    void this.cgroup?.remove(this.spec.killGraceMs);
  }

  /** The terminal's new size (terminal sessions only; ignored otherwise). */
  resize(size: WindowSize): void {
    this.terminal?.resize(size.cols, size.rows);
  }

  get pid(): number | undefined {
    return this.group?.id;
  }

  /** Sends a signal to the whole process group (as a terminal would), if it still holds our command. */
  signal(signal: NodeJS.Signals): void {
    if (!this.finished || this.killTimer) this.group?.signal(signal);
  }

  /**
   * SIGTERM to the command, then SIGKILL after the grace period unless it has finished:
   * to its cgroup when it has one (descendants that left the group included), else to
   * its group. Also used after the leader exited while descendants still hold its pipes.
   */
  stop(): void {
    if (this.finished || this.stopping) return;
    this.stopping = true;
    if (this.cgroup) {
      void this.cgroup.terminate().then((sent) => {
        if (!sent) this.signal('SIGTERM'); // it would not freeze: the group at least
      });
    } else {
      this.signal('SIGTERM');
    }
    this.killTimer = setTimeout(() => {
      this.kill();
      if (this.finished) this.release();
      else this.killTimer = undefined;
    }, this.spec.killGraceMs);
    this.killTimer.unref();
  }

  /**
   * Nobody will read the command's output any more (the session has ended): let go of
   * its pipes whatever state they are in — paused, full, held by descendants — so that
   * the command's end is seen and its descriptors freed. Writes then fail (EPIPE), as
   * after ssh's connection is gone. Call stop() as well to end the command.
   */
  discardOutput(): void {
    for (const stream of [this.stdout, this.stderr, this.status]) stream?.destroy();
    this.stdin?.destroy();
  }

  /** Kills the command at once (agent shutdown, second stop request): its cgroup, or its group. */
  kill(): void {
    this.cgroup?.kill();
    this.signal('SIGKILL');
  }
}

interface CommandStreams {
  stdout: Readable;
  stderr: Readable | null;
  stdin: Writable | null;
}

/** A command's leader with pipes, started by Node's child_process or by the native spawn. */
interface Launched extends CommandStreams {
  /** The launcher's report (descriptor 3); none from the native spawn, which reports by throwing. */
  status: Readable | null;
  /** Tells once that it started (its pid) or, with Node, that it failed to; then, once, that it exited. */
  watch(events: {
    started(pid: number): void;
    failed(err: NodeJS.ErrnoException): void;
    exited(code: number | null, signal: NodeJS.Signals | null): void;
  }): void;
}

/** Node's spawn (libuv forks the agent): output through pooled pipes, else socketpairs; stdin a socketpair. */
function launchWithNode(plan: LaunchPlan, spec: CommandSpec): Launched {
  const outPipe = spec.pipes?.take();
  const errPipe = spec.stderr ? spec.pipes?.take() : undefined;
  const statusPipe = spec.pipes?.take();
  const pooled = [outPipe, errPipe, statusPipe].filter((p): p is Pipe => p !== undefined);
  const stdio: StdioOptions = [
    spec.stdin ? 'pipe' : 'ignore',
    outPipe?.writeFd ?? 'pipe',
    spec.stderr ? (errPipe?.writeFd ?? 'pipe') : 'ignore',
    statusPipe?.writeFd ?? 'pipe',
  ];
  let child: ChildProcess;
  try {
    // detached: the child calls setsid(), so it leads a new process group that we can
    // signal as a whole (-pid) without touching the agent. The launcher enters the
    // working directory itself, as the run-as user.
    child = spawn(plan.file, plan.args, { detached: true, stdio, cwd: '/', env: plan.env });
  } catch (err) {
    // Synchronous failures (E2BIG: arguments and environment beyond the system's limit).
    for (const pipe of pooled) closeSync(pipe.readFd);
    throw err;
  } finally {
    // The child has its copies: the command (and its descendants) alone hold the write ends.
    for (const pipe of pooled) closeSync(pipe.writeFd);
  }
  const readEnd = (pipe: Pipe | undefined, own: Readable | null): Readable | null => (pipe ? readerOf(pipe.readFd) : own);
  return {
    stdout: readEnd(outPipe, child.stdout)!,
    stderr: readEnd(errPipe, child.stderr),
    status: readEnd(statusPipe, child.stdio[3] as Readable)!,
    stdin: child.stdin,
    watch(events) {
      child.once('error', (err: NodeJS.ErrnoException) => {
        if (child.pid === undefined) events.failed(err); // errors after spawn (e.g. kill) are not fatal
      });
      child.once('spawn', () => events.started(child.pid!));
      child.once('exit', (code, signal) => events.exited(code, signal));
    },
  };
}

/** The native spawn: no fork of the agent, no launcher; every stream a pipe (pipe2). */
function launchNative(native: NativeSpawn, launch: DirectLaunch, spec: CommandSpec): Launched {
  const made: number[] = [];
  const pipe = (agentEnd: 'read' | 'write'): [number, number] => {
    const fds = native.pipe(agentEnd);
    made.push(...fds);
    return fds;
  };
  let exit: ((code: number, signal: number) => void) | undefined;
  let pid: number;
  let out: [number, number], err: [number, number] | undefined, input: [number, number] | undefined;
  try {
    out = pipe('read');
    err = spec.stderr ? pipe('read') : undefined;
    input = spec.stdin ? pipe('write') : undefined;
    // A copy's data arrives in writes of up to 256 KiB (input-batch.ts); a 64 KiB pipe would
    // take each in several turns of the loop. The pages are used only while data waits.
    if (input) setPipeSizeIfAllowed(native, input[1], STDIN_PIPE_BYTES);
    const fds = [input?.[0] ?? -1, out[1], err?.[1] ?? -1];
    pid = native.spawn(launch.file, launch.argv, launch.env, fds, launch.steps, (code, signal) => exit?.(code, signal));
  } catch (error) {
    for (const fd of made) closeSync(fd);
    throw error;
  }
  // The child has its copies: the command (and its descendants) alone hold these ends.
  for (const fd of [out[1], err?.[1], input?.[0]]) if (fd !== undefined) closeSync(fd);
  return {
    stdout: readerOf(out[0]),
    stderr: err ? readerOf(err[0]) : null,
    status: null,
    stdin: input ? new Socket({ fd: input[1], readable: false, writable: true }) : null,
    watch(events) {
      events.started(pid);
      exit = (code, signal) => {
        const name = signal ? (signalNameOf(signal) ?? 'SIGKILL') : null;
        events.exited(name ? null : code, name);
      };
    },
  };
}

/** The native spawn's steps that fail as the launcher's do (its one-word reports). */
const LAUNCHER_STEPS = new Set(['cgroup', 'credentials', 'cwd', 'notfound', 'noexec']);

/** The kernel's pipe-max-size (1 MiB by default) allows this without privileges. */
const STDIN_PIPE_BYTES = 1024 * 1024;

function setPipeSizeIfAllowed(native: NativeSpawn, fd: number, bytes: number): void {
  try {
    native.setPipeSize(fd, bytes);
  } catch {
    // a lower pipe-max-size or a user's pipe page limit: the default size works, slower
  }
}

function readerOf(fd: number): Readable {
  return new Socket({ fd, readable: true, writable: false });
}

function signalNameOf(signal: number): NodeJS.Signals | undefined {
  return (Object.entries(osConstants.signals) as Array<[NodeJS.Signals, number]>).find(([, n]) => n === signal)?.[0];
}

// node-pty is optional and CommonJS: required on the first terminal session, not at start-up.
const requireHere = createRequire(import.meta.url);

/**
 * Why `file` could not be executed: the program itself (native spawn), or /bin/sh or
 * setpriv (the launcher, which looks the program up and reports on descriptor 3:
 * launchFailure).
 */
function spawnFailure(program: string, file: string, err: Pick<NodeJS.ErrnoException, 'code' | 'message'>): SpawnFailure {
  if (err.code === 'E2BIG') {
    return { reason: `${program}: argument list too long: the arguments and environment exceed the host's limit (E2BIG)`, exitCode: 126 };
  }
  return { reason: `${program}: cannot be started: the agent cannot execute ${file} (${err.code ?? err.message})`, exitCode: 126 };
}
