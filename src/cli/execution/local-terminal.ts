// The local side of `distrun --tty`: the user's terminal in raw mode, so that every key
// (Ctrl-C, Ctrl-Z, Ctrl-D included) goes to the remote program, as with `ssh -t`; its
// size, and its restoration whatever way distrun ends.
import { UsageError } from '../../errors.js';
import { TERM_PATTERN } from '../../protocol/constants.js';
import type { WindowSize } from '../../protocol/messages.js';

const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGHUP', 'SIGQUIT'];

export class LocalTerminal {
  private raw = false;
  private readonly restoreOnExit = (): void => this.restore();
  private readonly onSignal = (signal: NodeJS.Signals): void => {
    this.restore();
    // Die of the same signal, as a program without handlers would.
    for (const s of STOP_SIGNALS) process.removeAllListeners(s);
    process.kill(process.pid, signal);
  };

  private constructor(
    private readonly input: NodeJS.ReadStream,
    private readonly output: NodeJS.WriteStream,
  ) {}

  /** The terminal distrun runs in; a usage error when stdin or stdout is not one. */
  static open(input: NodeJS.ReadStream = process.stdin, output: NodeJS.WriteStream = process.stdout): LocalTerminal {
    if (!input.isTTY || !output.isTTY) {
      throw new UsageError('--tty needs a terminal: run it from an interactive shell (stdin and stdout must be terminals)');
    }
    return new LocalTerminal(input, output);
  }

  get size(): WindowSize {
    return { cols: this.output.columns || 80, rows: this.output.rows || 24 };
  }

  get type(): string {
    // A TERM the agent would refuse as an option is not worth a failed session.
    return process.env.TERM && TERM_PATTERN.test(process.env.TERM) ? process.env.TERM : 'xterm';
  }

  /** Raw mode until restore(); also restored on exit and on SIGTERM, SIGHUP, SIGQUIT. */
  enterRaw(): void {
    if (this.raw) return;
    this.input.setRawMode(true);
    this.raw = true;
    process.on('exit', this.restoreOnExit);
    for (const signal of STOP_SIGNALS) process.on(signal, this.onSignal);
  }

  restore(): void {
    if (!this.raw) return;
    this.raw = false;
    this.input.setRawMode(false);
    process.off('exit', this.restoreOnExit);
    for (const signal of STOP_SIGNALS) process.off(signal, this.onSignal);
  }

  onResize(listener: (size: WindowSize) => void): () => void {
    const handler = (): void => listener(this.size);
    this.output.on('resize', handler);
    return () => this.output.off('resize', handler);
  }
}
