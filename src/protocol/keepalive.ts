// Keepalives (protocol version 2): while a command runs, each side sends KAL every
// interval and gives the other up after KEEPALIVE_MISSES intervals without a byte from
// it. TCP alone notices a vanished peer only after minutes (keepalive probes) or a
// quarter of an hour (retransmissions), and never while it has nothing to send.
//
// Only the timing lives here; the owner sends the frame and decides what "lost" means.
import { KEEPALIVE_MISSES } from './constants.js';

interface KeepaliveHooks {
  /** Send one KAL frame. */
  send(): void;
  /** Nothing heard for `limitMs` (KEEPALIVE_MISSES intervals): the peer or the path to it is gone. Called once. */
  lost(limitMs: number): void;
}

export class Keepalive {
  private timer: NodeJS.Timeout | undefined;
  private lastHeard = Date.now();
  private paused = false;

  constructor(
    private readonly intervalMs: number,
    private readonly hooks: KeepaliveHooks,
  ) {}

  start(): void {
    if (this.timer || this.intervalMs <= 0) return;
    this.lastHeard = Date.now();
    this.timer = setInterval(() => this.tick(), this.intervalMs);
    this.timer.unref();
  }

  /** Bytes arrived from the peer. */
  heard(): void {
    this.lastHeard = Date.now();
  }

  /**
   * We stopped reading from the peer (our side is backed up): its keepalives wait
   * unread in the socket, so silence does not count until resume().
   */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.lastHeard = Date.now();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private tick(): void {
    const limitMs = KEEPALIVE_MISSES * this.intervalMs;
    if (!this.paused && Date.now() - this.lastHeard >= limitMs) {
      this.stop();
      this.hooks.lost(limitMs);
      return;
    }
    this.hooks.send();
  }
}
