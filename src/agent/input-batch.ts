// A client's input reaches the agent in pieces of one TLS record (16 KiB) each. Written
// to the command's stdin one by one, every piece costs a system call and a wake-up of
// the reader: in a copy, most of the agent's CPU (docs/benchmarks.md). Pieces that
// arrive in the same turn of the event loop go out as one write of at most MAX_BYTES:
// a session holds no more than that, and only until the loop's next check phase.

const MAX_BYTES = 256 * 1024;

export class InputBatch {
  private pieces: Buffer[] = [];
  private bytes = 0;
  private scheduled = false;

  constructor(private readonly write: (data: Buffer) => void) {}

  add(piece: Buffer): void {
    if (piece.length === 0) return;
    this.pieces.push(piece);
    this.bytes += piece.length;
    if (this.bytes >= MAX_BYTES) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        this.flush();
      });
    }
  }

  /** Writes what is held now (before anything that must follow the input: EOF, a signal). */
  flush(): void {
    if (this.pieces.length === 0) return;
    const data = this.pieces.length === 1 ? this.pieces[0]! : Buffer.concat(this.pieces, this.bytes);
    this.pieces = [];
    this.bytes = 0;
    this.write(data);
  }
}
