// A real terminal for tests: a tmux server of the test's own (its own socket, no user
// configuration), whose screen, pane title and paste buffers the test can read.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { addCleanup, tempDir, waitFor } from './fleet.js';

export const hasTmux = spawnSync('sh', ['-c', 'command -v tmux']).status === 0;

export class TmuxServer {
  private constructor(private readonly socket: string) {}

  /** A server with one idle session, so that options can be set before any program runs. */
  static start(name: string, options: Array<[string, string]> = []): TmuxServer {
    // The socket lives in a temporary directory of the test (tmux leaves it behind after
    // kill-server); cleanups run in reverse, so the server is gone before its directory.
    const server = new TmuxServer(join(tempDir(`distrun-${name}-`), 'tmux.sock'));
    server.run('-f', '/dev/null', 'new-session', '-d', '-s', 'idle');
    for (const [option, value] of options) server.run('set-option', '-g', option, value);
    addCleanup(() => {
      server.run('kill-server');
    });
    return server;
  }

  run(...args: string[]): { status: number | null; stdout: string } {
    const r = spawnSync('tmux', ['-S', this.socket, ...args], { encoding: 'utf8' });
    return { status: r.status, stdout: r.stdout };
  }

  /** Runs `command` (a shell command line) in a fresh cols x rows window named `session`. */
  open(session: string, command: string, cols = 100, rows = 30): void {
    this.run('kill-session', '-t', session);
    this.run('new-session', '-d', '-s', session, '-x', String(cols), '-y', String(rows), command);
  }

  screen(session: string): string {
    return this.run('capture-pane', '-p', '-t', session).stdout;
  }

  async shows(session: string, pattern: RegExp): Promise<boolean> {
    return waitFor(() => pattern.test(this.screen(session)), 10_000, 100);
  }

  paneTitle(session: string): string {
    return this.run('display-message', '-p', '-t', session, '#{pane_title}').stdout.trim();
  }

  /** The paste buffers (what OSC 52 would have written to the clipboard). */
  buffers(): string {
    return this.run('list-buffers').stdout;
  }
}
