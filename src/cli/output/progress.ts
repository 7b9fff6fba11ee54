// The live progress line on a terminal (stderr): hosts done / total, failures, hosts
// running and the slowest of them, led by a host whose command exited while a background
// process holds its output open (what else keeps the run waiting is not visible). Cleared before every output line, so it never
// mixes with output, and gone at the end. Nothing at all when stderr is not a TTY.
import type { LeaderExit } from '../../protocol/messages.js';
import { classify, type HostResult } from '../execution/outcome.js';
import type { Target } from '../targeting/model.js';
import type { RenderedHost, Renderer } from './renderers.js';
import { heldOpenNote } from './summary.js';

const REFRESH_MS = 250;
const CLEAR = '\r\x1b[K';

export class ProgressLine implements Renderer {
  private readonly started = new Map<Target, number>();
  /** Hosts whose command has exited while a background process holds its output open. */
  private readonly held = new Map<Target, LeaderExit>();
  private done = 0;
  private failed = 0;
  private shown = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly stderr: NodeJS.WriteStream,
    private readonly total: number,
  ) {
    this.timer = setInterval(() => this.draw(), REFRESH_MS);
    this.timer.unref();
  }

  static enabled(stderr: NodeJS.WritableStream, quiet: boolean): stderr is NodeJS.WriteStream {
    return !quiet && (stderr as NodeJS.WriteStream).isTTY === true;
  }

  hostStarted({ target }: RenderedHost): void {
    this.started.set(target, Date.now());
  }

  outputHeld({ target }: RenderedHost, leader: LeaderExit): void {
    this.held.set(target, leader);
  }

  hostDone(result: HostResult): void {
    this.started.delete(result.target);
    this.held.delete(result.target);
    this.done += 1;
    if (classify(result.outcome) !== 'ok') this.failed += 1;
  }

  /** Removes the line (before output is written: the screen streams' beforeWrite, and at the end). */
  clear(): void {
    if (!this.shown) return;
    this.stderr.write(CLEAR);
    this.shown = false;
  }

  /** The end of the run: the line goes away before the summary is written. */
  finish(): void {
    clearInterval(this.timer);
    this.clear();
  }

  private draw(): void {
    const now = Date.now();
    const slowest = [...this.started.entries()]
      .sort(([, a], [, b]) => a - b)
      .slice(0, 3)
      .map(([target, since]) => `${target.name} ${((now - since) / 1000).toFixed(1)}s`);
    let line = `[${this.done}/${this.total} done, ${this.failed} failed, ${this.started.size} running]`;
    if (slowest.length > 0) line += ` slowest: ${slowest.join(', ')}`;
    // Why a host that looks finished keeps the run waiting comes first: the line is cut to the width.
    const [heldHost] = this.held;
    if (heldHost) {
      const [target, leader] = heldHost;
      const others = this.held.size > 1 ? ` (and ${this.held.size - 1} more)` : '';
      line = `${target.name}${others}: ${heldOpenNote(leader)}  ${line}`;
    }
    const width = this.stderr.columns || 80;
    this.stderr.write(`${CLEAR}${line.slice(0, width - 1)}`);
    this.shown = true;
  }
}
