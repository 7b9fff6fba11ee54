// Real pipes for the commands' stdout and stderr. Node gives a child a socketpair for
// 'pipe' stdio; a pipe is what a shell and sshd give, and costs the command and the
// agent about half as much CPU per byte written (docs/benchmarks.md). Node has no
// pipe(2), so pipes are made as named FIFOs by mkfifo(1), a batch at a time, in a
// fresh private directory; both ends are opened and the names removed at once, so
// what the pool holds are anonymous pipes and nothing stays on disk.
import { execFile, execFileSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Pipe {
  /** Non-blocking, for the agent's event loop. */
  readFd: number;
  /** Blocking, as a command expects its stdout to be; the child gets it, the agent closes its copy. */
  writeFd: number;
}

export class PipePool {
  private readonly ready: Pipe[] = [];
  private refilling = false;
  private broken: string | undefined;
  private closed = false;

  /** `batch` pipes are made whenever fewer than half of them are left. */
  constructor(private readonly batch = 32, private readonly onBroken: (reason: string) => void = () => {}) {
    // The first batch before the first session: later ones are made in the background.
    this.makeBatch((dir, names, done) => {
      try {
        execFileSync('mkfifo', ['-m', '600', ...names], { stdio: 'ignore' });
        done(null);
      } catch (err) {
        done(err as Error);
      }
    });
  }

  /** A pipe, or undefined when none is ready (the caller falls back to a socketpair). */
  take(): Pipe | undefined {
    const pipe = this.ready.pop();
    if (this.ready.length < this.batch / 2) this.refill();
    return pipe;
  }

  close(): void {
    this.closed = true;
    for (const { readFd, writeFd } of this.ready.splice(0)) {
      closeSync(readFd);
      closeSync(writeFd);
    }
  }

  private refill(): void {
    this.makeBatch((dir, names, done) => execFile('mkfifo', ['-m', '600', ...names], (err) => done(err)));
  }

  private makeBatch(mkfifo: (dir: string, names: string[], done: (err: Error | null) => void) => void): void {
    if (this.refilling || this.broken || this.closed) return;
    this.refilling = true;
    const dir = mkdtempSync(join(tmpdir(), 'distrunner-pipes-'));
    const names = Array.from({ length: this.batch }, (_, i) => join(dir, String(i)));
    mkfifo(dir, names, (err) => {
      try {
        if (err) throw err;
        for (const name of names) this.ready.push(openBothEnds(name));
      } catch (failure) {
        // Without mkfifo (or with no descriptors left) commands get socketpairs.
        this.broken = (failure as Error).message;
        this.onBroken(this.broken);
      } finally {
        rmSync(dir, { recursive: true, force: true });
        this.refilling = false;
        if (this.closed) this.close();
      }
    });
  }
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
