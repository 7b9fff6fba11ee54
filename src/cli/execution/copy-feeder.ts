// One host's side of a copy: sends the entries over the session's input, waits for the
// receiver's answer to each file (WNT: send it; HAV: a file of that size is there, with
// this sha256: SAM when it is ours, else send it; FIL: refused already), sends the data
// from the shared reads with its sha256 in END, and collects one result per entry. The
// receiver's answers arrive as the session's output (protocol 5).
import { ErrorCodes } from '../../errors.js';
import { FileToken } from '../../protocol/constants.js';
import {
  decodeEntryNumber,
  decodeHave,
  decodeResult,
  encodeCopyEnd,
  encodeEntry,
  encodeEntryNumber,
  type EntryResult,
} from '../../protocol/file-messages.js';
import { FrameDecoder } from '../../protocol/frame-decoder.js';
import { encodeFrameHeader } from '../../protocol/messages.js';
import type { SourceEntry } from './copy-sources.js';
import type { Session } from './session.js';
import type { SharedSources } from './shared-source.js';

/** The receiver's answer to a file entry: send it, maybe the same (the sha256 it has), reported, or the session is over. */
type Answer = 'want' | { have: string } | 'result' | 'closed';

export class CopyFeeder {
  private readonly decoder = new FrameDecoder({ maxPayload: 64 * 1024 });
  private readonly pending = new Map<number, (answer: Answer) => void>();
  /** Entries the receiver has reported (a file that failed while its data was going out stops there). */
  private readonly reported = new Set<number>();
  /** Why a source could not be read here, by entry: said instead of the receiver's byte count. */
  private readonly localProblems = new Map<number, string>();
  private closed = false;
  readonly results: EntryResult[] = [];

  constructor(
    private readonly session: Session,
    private readonly entries: readonly SourceEntry[],
    private readonly sources: SharedSources,
    private readonly onResult: (result: EntryResult) => void,
  ) {
    session.on('stdout', (chunk) => this.answers(chunk));
    session.once('done', () => {
      this.closed = true;
      for (const resolve of this.pending.values()) resolve('closed');
      this.pending.clear();
    });
  }

  /** Starts sending; a failure on this side (a bug) ends the host's session with the reason, never the whole run. */
  start(): void {
    this.run().catch((err: unknown) => this.session.abort(ErrorCodes.INTERNAL, `the copy stopped on this side: ${(err as Error).message}`));
  }

  /** Sends every entry; resolves when the last one is out (or the session has ended). */
  private async run(): Promise<void> {
    for (const { entry, source } of this.entries) {
      if (!(await this.send(encodeEntry(entry)))) return;
      if (entry.type !== 'file') continue;
      // Hashed while the host looks at its own file; let go as soon as it asks for the data.
      const digest = this.sources.digest(entry.i, source!);
      const answer = await new Promise<Answer>((resolve) => {
        if (this.closed) resolve('closed');
        else if (this.reported.has(entry.i)) resolve('result');
        else this.pending.set(entry.i, resolve);
      });
      if (typeof answer !== 'object') digest.release();
      if (answer === 'closed') return;
      if (typeof answer === 'object') {
        const same = await digest.sha256.then(
          (ours) => ours === answer.have,
          () => false, // unreadable: sending it then fails with the reason
        );
        digest.release();
        const going = same ? await this.send(encodeEntryNumber(FileToken.SAME, entry.i)) : await this.sendData(entry.i, source!, entry.size!);
        if (!going) return;
      } else if (answer === 'want' && !(await this.sendData(entry.i, source!, entry.size!))) return;
    }
    this.session.endInput();
  }

  private async sendData(i: number, source: string, size: number): Promise<boolean> {
    const cursor = this.sources.cursor(i, source, size);
    let sha256: string | undefined;
    try {
      for (let chunk = await cursor.next(); chunk !== null; chunk = await cursor.next()) {
        if (this.reported.has(i)) break; // refused midway (disk full): the rest is not sent
        // The chunk is shared by every host sending this file: only its header is new.
        if (!(await this.send(encodeFrameHeader(FileToken.DATA, chunk.length), chunk))) return false;
      }
      sha256 = cursor.digest();
    } catch (err) {
      this.localProblems.set(i, `cannot read ${source}: ${(err as Error).message}`);
    } finally {
      cursor.close();
    }
    // Without a sha256 (the file could not be read whole), the receiver fails the entry on its byte count.
    return this.send(encodeCopyEnd(sha256 === undefined ? { i } : { i, sha256 }));
  }

  /** false once the session is over. */
  private async send(...parts: Buffer[]): Promise<boolean> {
    if (this.closed) return false;
    if (!this.session.sendInput(...parts) && !this.closed) {
      await new Promise<void>((resolve) => {
        const go = (): void => {
          this.session.off('input-drain', go);
          this.session.off('done', go);
          resolve();
        };
        this.session.on('input-drain', go);
        this.session.on('done', go);
      });
    }
    return !this.closed;
  }

  private answers(chunk: Buffer): void {
    try {
      for (const { token, payload } of this.decoder.decode(chunk)) {
        if (token === FileToken.WANT) this.answer(decodeEntryNumber(payload, FileToken.WANT), 'want');
        else if (token === FileToken.HAVE) {
          const { i, sha256 } = decodeHave(payload);
          this.answer(i, { have: sha256 });
        } else if (token === FileToken.RESULT) this.result(decodeResult(payload));
        else if (token !== FileToken.TEMP) throw new Error(`unexpected ${token}`);
      }
    } catch (err) {
      this.session.abort(ErrorCodes.PROTOCOL, `the agent's file receiver broke the protocol: ${(err as Error).message}`);
    }
  }

  private result(result: EntryResult): void {
    const local = this.localProblems.get(result.i);
    const final = local && result.outcome === 'failed' ? { ...result, reason: local } : result;
    this.reported.add(result.i);
    this.results.push(final);
    this.onResult(final);
    this.answer(result.i, 'result');
  }

  private answer(i: number, answer: Answer): void {
    const resolve = this.pending.get(i);
    this.pending.delete(i);
    resolve?.(answer);
  }
}
