// Lines that peers can make the agent write (failed handshakes, refusals, dropped
// connections) are limited per message: at most `limit` in an interval, then one line
// saying how many were left out. A flood of connections cannot fill the disk or bury
// the lines that matter, and the count says that it happened.
import type { Logger } from 'pino';

interface Window {
  written: number;
  suppressed: number;
  timer: NodeJS.Timeout;
}

export class LogRateLimit {
  private readonly windows = new Map<string, Window>();

  constructor(
    private readonly log: Logger,
    private readonly limit = 20,
    private readonly intervalMs = 10_000,
  ) {}

  /** Whether a line with this message may be written now (counts it either way). */
  allow(msg: string): boolean {
    let window = this.windows.get(msg);
    if (!window) {
      window = { written: 0, suppressed: 0, timer: setTimeout(() => this.close(msg), this.intervalMs).unref() };
      this.windows.set(msg, window);
    }
    if (window.written < this.limit) {
      window.written += 1;
      return true;
    }
    window.suppressed += 1;
    return false;
  }

  /** Writes the pending counts now (the agent is stopping). */
  flush(): void {
    for (const [msg, window] of this.windows) {
      clearTimeout(window.timer);
      this.close(msg);
    }
  }

  private close(msg: string): void {
    const window = this.windows.get(msg);
    this.windows.delete(msg);
    if (window && window.suppressed > 0) {
      this.log.warn({ suppressed: window.suppressed, of: msg, seconds: this.intervalMs / 1000 }, 'log lines suppressed');
    }
  }
}
