// One session's byte stream over broker messages: a Duplex that node:tls runs its TLS
// connection on (tls.connect({ socket }) on the client, the agent's tls.Server on the
// agent), so that everything above (certificates, frames, keepalives) is the direct
// path's own code. What the broker cannot give, this adds:
// - order and completeness: each direction numbers its messages; a gap, a repeat or a
//   reordering ends the session with a reason (a lost TLS record could not be recovered
//   from anyway, and the session above says which host it was);
// - flow control: core NATS has no backpressure, so each side may send only as many
//   bytes as the other has granted (its window), and grants more as its reader takes
//   them. A slow reader (`distrun ... | less`) stops its agent's command as on a TCP
//   connection, and neither side buffers more than the window it granted;
// - an end: END is a half close (TCP's FIN), RESET ends both ways with a reason.
// Pure state machine over two callbacks: `send` (to the broker) and receive() (from it).
import { Duplex } from 'node:stream';
import { DistRunError, ErrorCodes, ProtocolError } from '../errors.js';
import {
  CARRIER_VERSION,
  CarrierKind,
  decodeCarrier,
  encodeData,
  encodeEnd,
  encodeOpen,
  encodeReset,
  encodeWindow,
  MAX_CARRIER_DATA,
  type CarrierMessage,
} from '../protocol/carrier.js';

/** The session over the broker ended abnormally: the peer reset it, or messages were lost. */
export class CarrierError extends DistRunError {
  constructor(
    message: string,
    /** Said by the peer (its RESET), not found here. */
    readonly byPeer = false,
  ) {
    super(ErrorCodes.DISCONNECTED, message);
  }
}

interface CarrierOptions {
  /** Hands one message to the broker for the peer. */
  send(message: Buffer): void;
  /** Bytes the peer may send before it hears of more room (and so what this side may buffer). */
  window: number;
  /** The side that sends the first message (the client); the other side's first message must be an OPEN. */
  opens: boolean;
  /** Shown where a socket's address would be (logs, limits): e.g. "broker:admin". */
  remoteAddress: string;
}

export class CarrierStream extends Duplex {
  readonly remoteAddress: string;
  readonly remotePort = 0;
  private readonly sendMessage: (message: Buffer) => void;
  private readonly window: number;
  private sendSeq = 0;
  private receiveSeq = 0;
  /** The peer's OPEN has come (the opener learns the peer's window from it). */
  private peerOpened = false;
  /** This side's OPEN has gone. */
  private opened = false;
  /** Bytes this side may still send. */
  private credit = 0;
  /** Bytes the peer may still send. */
  private peerCredit: number;
  /** Bytes sent so far. */
  private sent = 0;
  /** Bytes received and pushed; of those, how many the reader had taken at the last grant. */
  private received = 0;
  private grantedAt = 0;
  /** A write waiting for credit: what is left of it, and its callback. */
  private pending: { data: Buffer; callback: (err?: Error | null) => void } | undefined;
  private ended = false;
  private over = false;

  constructor(options: CarrierOptions) {
    super({ readableHighWaterMark: options.window, writableHighWaterMark: MAX_CARRIER_DATA, allowHalfOpen: true });
    this.sendMessage = options.send;
    this.window = options.window;
    this.peerCredit = options.window;
    this.remoteAddress = options.remoteAddress;
    // The opener sends its first bytes before it knows the peer's window: the OPEN carries
    // them, up to one message's worth (a ClientHello is far less; every window is larger).
    if (options.opens) this.credit = MAX_CARRIER_DATA;
  }

  /** A message from the broker for this session. */
  receive(raw: Uint8Array): void {
    if (this.over) return;
    let message: CarrierMessage;
    try {
      message = decodeCarrier(raw);
    } catch (err) {
      this.violation((err as Error).message);
      return;
    }
    // A RESET ends the session whatever its number: one sent after a broker link came back
    // may overtake what was lost, and it can do nothing that dropping messages could not.
    if (message.kind === CarrierKind.RESET) {
      this.over = true;
      this.destroy(new CarrierError(message.reason || 'the peer ended the session', true));
      return;
    }
    if (message.seq !== this.receiveSeq) {
      this.violation(`messages lost or out of order on the way through the broker (got #${message.seq}, expected #${this.receiveSeq})`);
      return;
    }
    this.receiveSeq += 1;
    if (!this.peerOpened && message.kind !== CarrierKind.OPEN) {
      this.violation('the first message of a session must open it');
      return;
    }
    switch (message.kind) {
      case CarrierKind.OPEN:
        if (this.peerOpened) return this.violation('a session is opened only once');
        if (message.version !== CARRIER_VERSION) return this.violation(`carrier version ${message.version} is not spoken here (${CARRIER_VERSION})`);
        this.peerOpened = true;
        // What was sent before the peer's window was known counts against it.
        this.credit = message.window - this.sent;
        if (message.data.length > 0) this.deliver(message.data);
        this.flushPending();
        return;
      case CarrierKind.DATA:
        this.deliver(message.data);
        return;
      case CarrierKind.WINDOW:
        this.credit += message.grant;
        this.flushPending();
        return;
      case CarrierKind.END:
        if (this.ended) return this.violation('END came twice');
        this.ended = true;
        this.push(null);
        return;
    }
  }

  /** The broker link is gone (or the session must end for a reason of this side's): reset, with `reason`. */
  fail(reason: string): void {
    if (this.over) return;
    this.destroy(new CarrierError(reason));
  }

  private deliver(data: Buffer): void {
    if (this.ended) return this.violation('data after END');
    if (data.length > this.peerCredit) return this.violation(`the peer sent ${data.length} bytes with ${this.peerCredit} left in its window`);
    this.peerCredit -= data.length;
    this.received += data.length;
    this.push(data);
    this.grant();
  }

  // Room is granted for what the reader has taken: received minus what waits in the buffer.
  private grant(): void {
    if (this.over || this.ended) return;
    const taken = this.received - this.readableLength;
    const grant = taken - this.grantedAt;
    if (grant < this.window / 2) return;
    this.grantedAt = taken;
    this.peerCredit += grant;
    if (!this.opened) this.emitMessage(this.openWith(Buffer.alloc(0)));
    this.emitMessage(encodeWindow(this.nextSeq(), grant));
  }

  // Room is granted as the reader takes bytes: here (paused or flowing, Node's readers
  // call read()) and after each push (a flowing reader takes it at once).
  override read(size?: number): unknown {
    const chunk: unknown = super.read(size);
    if (chunk !== null) this.grant();
    return chunk;
  }

  override _read(): void {
    // Nothing to fetch: data comes as the broker delivers it (receive()).
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.pending = { data: chunk, callback };
    this.flushPending();
  }

  private flushPending(): void {
    while (this.pending && !this.over) {
      const { data, callback } = this.pending;
      const size = Math.min(data.length, MAX_CARRIER_DATA, this.credit);
      if (size <= 0) return;
      this.credit -= size;
      this.sent += size;
      const piece = data.subarray(0, size);
      this.emitMessage(this.opened ? encodeData(this.nextSeq(), piece) : this.openWith(piece));
      if (size === data.length) {
        this.pending = undefined;
        callback();
      } else {
        this.pending = { data: data.subarray(size), callback };
      }
    }
  }

  private openWith(data: Buffer): Buffer {
    this.opened = true;
    return encodeOpen(this.nextSeq(), this.window, data);
  }

  override _final(callback: (err?: Error | null) => void): void {
    if (!this.opened) this.emitMessage(this.openWith(Buffer.alloc(0)));
    this.emitMessage(encodeEnd(this.nextSeq()));
    callback();
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    const wasOver = this.over;
    this.over = true;
    const waiting = this.pending;
    this.pending = undefined;
    // Unless the peer said it first, or both ways have ended cleanly, the peer hears why.
    if (!wasOver && !(this.ended && this.writableFinished)) {
      const reason = err ? err.message : 'session closed';
      this.sendSafely(encodeReset(this.nextSeq(), reason));
    }
    waiting?.callback(err ?? new CarrierError('session closed'));
    callback(err);
  }

  private violation(reason: string): void {
    this.destroy(new ProtocolError(`broker carrier: ${reason}`));
  }

  private nextSeq(): number {
    const seq = this.sendSeq;
    this.sendSeq += 1;
    return seq;
  }

  private emitMessage(message: Buffer): void {
    if (!this.sendSafely(message)) this.destroy(new CarrierError('the broker connection is gone'));
  }

  private sendSafely(message: Buffer): boolean {
    try {
      this.sendMessage(message);
      return true;
    } catch {
      return false;
    }
  }
}
