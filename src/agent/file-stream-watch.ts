// What the agent learns from a copy's receiver or a fetch's sender, by reading along the
// file stream it forwards to the client: one audit record per entry (a receiver's FIL; a
// sender's END, or its FIL for an entry it could not send), and the temporary files a
// receiver announced (TMP) and has not yet renamed, so that they can be removed if it is
// killed. The bytes themselves go to the client unchanged; a program whose stream stops
// making sense is no longer watched (its start and end are audited all the same).
import type { Logger } from 'pino';
import { messageOf } from '../errors.js';
import { FILE_STREAM_TOKENS, FileToken } from '../protocol/constants.js';
import { decodeEntry, decodeResult, decodeSentEnd, decodeTempNote } from '../protocol/file-messages.js';
import { FrameDecoder } from '../protocol/frame-decoder.js';
import type { SessionAudit } from './session-audit.js';

export class FileStreamWatch {
  private decoder: FrameDecoder | undefined = new FrameDecoder({ maxPayload: 64 * 1024, streamed: FILE_STREAM_TOKENS });
  private readonly temporaries = new Map<number, string>();
  /** A sender's file entries announced and not yet ended: their paths on the host. */
  private readonly sending = new Map<number, string>();

  constructor(
    private readonly audit: SessionAudit,
    private readonly log: Logger,
    /** A copy's receiver answers (WNT, HAV, FIL, TMP; only FIL and TMP matter here); a fetch's sender sends the entries (ENT, DAT, END, FIL). */
    private readonly direction: 'copy' | 'fetch',
  ) {}

  /** A chunk of the program's stdout. */
  answers(chunk: Buffer): void {
    if (!this.decoder) return;
    try {
      for (const { token, payload } of this.decoder.decode(chunk)) {
        if (token === FileToken.RESULT) {
          const result = decodeResult(payload);
          this.temporaries.delete(result.i);
          this.sending.delete(result.i);
          this.audit.file(result);
        } else if (this.direction === 'copy') {
          if (token === FileToken.TEMP) {
            const note = decodeTempNote(payload);
            this.temporaries.set(note.i, note.path);
          }
        } else if (token === FileToken.ENTRY) {
          const entry = decodeEntry(payload, 'fetch');
          const path = `/${entry.path}`;
          if (entry.type === 'file') this.sending.set(entry.i, path);
          else this.audit.file({ path, outcome: 'sent' });
        } else if (token === FileToken.END) {
          const { i, size, sha256 } = decodeSentEnd(payload);
          this.audit.file({ path: this.sending.get(i) ?? '?', outcome: 'sent', size, sha256 });
          this.sending.delete(i);
        }
      }
    } catch (err) {
      this.log.warn({ err: messageOf(err) }, `${this.direction} file stream no longer understood; its entries are not audited`);
      this.decoder = undefined;
    }
  }

  /** The temporary files announced and not renamed; asked once, when the receiver has ended. */
  takeTemporaries(): string[] {
    const paths = [...this.temporaries.values()];
    this.temporaries.clear();
    return paths;
  }
}
