// Real pipes for the commands' stdout and stderr. Node gives a child a socketpair for
// 'pipe' stdio; a pipe is what a shell and sshd give, and costs the command and the
// agent about half as much CPU per byte written (docs/benchmarks.md). Node has no
// pipe(2), so pipes are made as named FIFOs by mkfifo(1), a batch at a time, in a
// fresh private directory; both ends are opened and the names removed at once, so
// what the pool holds are anonymous pipes and nothing stays on disk.
//
// The mkfifo runs come from a small helper shell started once: forking the agent
// itself (a large process) for each batch would stall every session it serves.
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, closeSync, constants, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export interface Pipe {
  /** Non-blocking, for the agent's event loop. */
  readFd: number;
  /** Blocking, as a command expects its stdout to be; the child gets it, the agent closes its copy. */
  writeFd: number;
}

/** More pipes are made between 1 and 5 times this long after half the pool is used. */
const REFILL_DELAY_MS = 1000;

// Reads a directory per line, makes FIFOs 0..N-1 in it and answers ok or fail; once the
// agent has opened them (its next line, or the end of its input if it died meanwhile),
// removes the directory: nothing is left behind even when the agent is killed. (SIGPIPE
// is ignored: an answer to an agent that just died must not end the helper before that.)
const HELPER = `n=$1
trap '' PIPE
while IFS= read -r dir; do
  set --; i=0
  while [ "$i" -lt "$n" ]; do set -- "$@" "$dir/$i"; i=$((i + 1)); done
  if mkfifo -m 600 "$@" 2>/dev/null; then echo ok; else echo fail; fi
  IFS= read -r opened
  rm -rf -- "$dir"
done`;

/**
 * How many pipes to make at a time: 64, or fewer under a low open-files limit, so that
 * the pool (two descriptors a pipe, up to two batches ready) keeps at most a quarter of
 * the agent's descriptors and the rest serve connections and commands.
 */
export function pipeBatchSize(limits = readOpenFilesLimit()): number {
  return Math.max(1, Math.min(64, Math.floor(limits / 16)));
}

function readOpenFilesLimit(): number {
  try {
    const soft = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'latin1'))?.[1];
    return soft === undefined || soft === 'unlimited' ? Infinity : Number(soft);
  } catch {
    return Infinity;
  }
}

export class PipePool {
  private readonly ready: Pipe[] = [];
  private readonly helper: ChildProcess;
  private pending: string | undefined;
  private refillTimer: NodeJS.Timeout | undefined;
  private broken = false;
  private closed = false;
  private settleFirst: (() => void) | undefined;
  /** Settles once the first batch is made (or cannot be). */
  readonly firstBatch = new Promise<void>((resolve) => {
    this.settleFirst = resolve;
  });

  /** `batch` pipes are made at a time, some time after fewer than half of them are left. */
  constructor(
    private readonly batch: number,
    private readonly onBroken: (reason: string) => void,
  ) {
    this.helper = spawn('/bin/sh', ['-c', HELPER, 'sh', String(batch)], { stdio: ['pipe', 'pipe', 'ignore'] });
    this.helper.once('error', (err) => this.helperGone(`cannot start /bin/sh: ${err.message}`));
    this.helper.once('exit', () => this.helperGone('the helper that makes pipes has exited'));
    if (!this.helper.stdin || !this.helper.stdout) {
      // Out of descriptors (EMFILE): no process and no pipes; 'error' follows.
      this.helperGone('cannot start /bin/sh: out of file descriptors');
      return;
    }
    // Its pipes fail (EPIPE, ECONNRESET) only when it has gone, which 'exit' reports.
    this.helper.stdin!.on('error', () => this.helperGone('the helper that makes pipes has exited'));
    this.helper.stdout!.on('error', () => {});
    // It ends when its input does: at close(), or when the agent dies.
    createInterface({ input: this.helper.stdout! }).on('line', (answer) => this.batchMade(answer === 'ok'));
    this.refill();
  }

  /** A pipe, or undefined when none is ready (the caller falls back to a socketpair). */
  take(): Pipe | undefined {
    const pipe = this.ready.pop();
    // More pipes a little later, at a random moment: not in the middle of the burst of
    // sessions that used them, and not at the same moment as every other agent of a run.
    if (this.ready.length < this.batch / 2 && !this.refillTimer && !this.pending) {
      this.refillTimer = setTimeout(
        () => {
          this.refillTimer = undefined;
          this.refill();
        },
        REFILL_DELAY_MS * (1 + 4 * Math.random()),
      ).unref();
    }
    return pipe;
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.refillTimer);
    this.helper.stdin?.end();
    for (const { readFd, writeFd } of this.ready.splice(0)) {
      closeSync(readFd);
      closeSync(writeFd);
    }
  }

  private refill(): void {
    if (this.pending || this.broken || this.closed) return;
    try {
      this.pending = mkdtempSync(join(fifoParent(), 'distrunner-pipes-'));
    } catch {
      // Out of descriptors or space for now: the next take() asks again.
      this.settleFirst?.();
      return;
    }
    this.helper.stdin!.write(`${this.pending}\n`);
  }

  private batchMade(ok: boolean): void {
    const dir = this.pending;
    if (!dir) return;
    try {
      if (!ok) throw new Error('mkfifo failed (is it installed?)');
      if (!this.closed) for (let i = 0; i < this.batch; i += 1) this.ready.push(openBothEnds(join(dir, String(i))));
    } catch (err) {
      // Out of descriptors (EMFILE, ENFILE) passes: keep what was opened, try again later.
      // Anything else (no mkfifo) will not.
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EMFILE' && code !== 'ENFILE') this.fail((err as Error).message);
    } finally {
      // The helper removes the directory now.
      this.helper.stdin!.write('opened\n');
      this.pending = undefined;
      this.settleFirst?.();
    }
  }

  private helperGone(reason: string): void {
    // Nobody else will remove a batch that was being made.
    if (this.pending) rmSync(this.pending, { recursive: true, force: true });
    this.pending = undefined;
    this.fail(reason);
  }

  // Without pipes, commands get socketpairs: slower for large outputs, otherwise the same.
  private fail(reason: string): void {
    if (this.broken || this.closed) return;
    this.broken = true;
    this.settleFirst?.();
    this.onBroken(reason);
  }
}

/**
 * Where the FIFOs are made for their moment on disk: a memory file system. On ext4,
 * creating and removing thousands of inodes a second makes the inode allocator scan
 * (a run of 200 agents stalled for seconds).
 */
function fifoParent(): string {
  for (const dir of [process.env.RUNTIME_DIRECTORY, '/dev/shm']) {
    if (!dir) continue;
    try {
      accessSync(dir, constants.W_OK);
      return dir;
    } catch {
      // Not there, or not ours to write: try the next.
    }
  }
  return tmpdir();
}

function openBothEnds(name: string): Pipe {
  // The read end first, without waiting for a writer; then the write end opens at once.
  const readFd = openSync(name, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    return { readFd, writeFd: openSync(name, constants.O_WRONLY) };
  } catch (err) {
    closeSync(readFd);
    throw err;
  }
}
