// The agent's native spawn (native/spawn.c, built at install into build/Release): a
// command's process made with clone(CLONE_VM | CLONE_VFORK) instead of libuv's fork of
// the whole agent, and pipes made with pipe2(2) instead of FIFOs. Optional: without the
// built addon (no compiler where the package was installed), on a kernel without pidfds
// (before 5.3), or with DISTRUNNER_SPAWN=fork in the agent's environment, commands are
// started by Node's child_process as before (command-process.ts), which the tests cover too.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';

export interface NativeSpawn {
  /**
   * Starts the program `file` with `argv` and `env` ("NAME=value"), in a session and
   * process group of its own, every signal at its default and none blocked. The child's
   * descriptor i is `fds[i]` (-1: /dev/null); nothing else is open in it. Then, in this
   * order: it enters the cgroup `steps.cgroupProcs`; takes on `steps.user` (its groups as
   * initgroups(3) gives them, its gid, its uid); enters `steps.cwd` (relative to /), else
   * `steps.home`, else /, and sets PWD and OLDPWD as the launcher's `cd -P` does; finds
   * `file` (a path as it is, else in `steps.path`), which becomes argv[0]; executes it
   * (with /bin/sh when it is a script without #!). Returns the pid; `onExit` is called
   * once, when the process has ended and been reaped (code -1 when a signal ended it).
   * Throws a NativeSpawnError when the program does not start.
   */
  spawn(
    file: string,
    argv: readonly string[],
    env: readonly string[],
    fds: readonly number[],
    steps: SpawnSteps,
    onExit: (code: number, signal: number) => void,
  ): number;
  /** A pipe [read, write], both close-on-exec, the agent's end (`read` or `write`) non-blocking. */
  pipe(agentEnd: 'read' | 'write'): [number, number];
  /** Asks the kernel for a pipe buffer of `bytes`; returns what it gave (capped by fs.pipe-max-size). */
  setPipeSize(fd: number, bytes: number): number;
}

export interface SpawnSteps {
  cgroupProcs?: string;
  user?: { name: string; uid: number; gid: number };
  cwd?: string;
  home?: string;
  path?: string;
}

/** Where `npm install` builds the addon, from dist/src/agent. */
const ADDON = new URL('../../../build/Release/distrun_spawn.node', import.meta.url);

let loaded: { spawn: NativeSpawn } | { unavailable: string } | undefined;

/** The native spawn, or why the agent starts commands with Node's child_process. */
export function loadNativeSpawn(env: NodeJS.ProcessEnv = process.env): { spawn: NativeSpawn } | { unavailable: string } {
  if (env.DISTRUNNER_SPAWN === 'fork') return { unavailable: 'DISTRUNNER_SPAWN=fork is set' };
  if (loaded) return loaded;
  loaded = ((): { spawn: NativeSpawn } | { unavailable: string } => {
    if (!existsSync(ADDON)) return { unavailable: 'the native addon was not built when the package was installed (no compiler?)' };
    try {
      const addon = createRequire(import.meta.url)(ADDON.pathname) as NativeSpawn & { check(): string | null };
      const missing = addon.check();
      return missing === null ? { spawn: addon } : { unavailable: missing };
    } catch (err) {
      return { unavailable: `the native addon cannot be loaded: ${(err as Error).message}` };
    }
  })();
  return loaded;
}

/**
 * What the addon throws when a step fails: `code` (ENOENT, E2BIG, ...) and which `step` it
 * was; `cgroup`, `credentials`, `cwd`, `notfound` and `noexec` are the launcher's words.
 */
export interface NativeSpawnError extends Error {
  errno: number;
  code?: string;
  step:
    | 'signals'
    | 'setsid'
    | 'cgroup'
    | 'descriptors'
    | 'credentials'
    | 'cwd'
    | 'notfound'
    | 'noexec'
    | 'exec'
    | 'clone'
    | 'pidfd_open'
    | 'pipe2'
    | 'fcntl'
    | 'memory';
}
