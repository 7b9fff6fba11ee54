// -t and --tty: local stdin goes to every host, including hosts that start after part of it was read.
import type { Readable } from 'node:stream';
import type { Session } from './session.js';

/** Sends local stdin to every host, including hosts that start after part of it was read. */
export class InputBroadcast {
  private readonly history: Buffer[] = [];
  private ended = false;
  private readonly listeners = new Set<Session>();

  constructor(private readonly input: Readable) {
    input.on('data', (chunk: Buffer) => {
      this.history.push(chunk);
      for (const session of this.listeners) session.sendInput(chunk);
    });
    input.on('end', () => {
      this.ended = true;
      for (const session of this.listeners) session.endInput();
      this.listeners.clear();
    });
    input.on('error', () => input.emit('end'));
  }

  attach(session: Session): void {
    for (const chunk of this.history) session.sendInput(chunk);
    if (this.ended) {
      session.endInput();
      return;
    }
    this.listeners.add(session);
    session.once('done', () => this.listeners.delete(session));
  }

  close(): void {
    this.input.destroy();
  }
}
