// What the agent learns from a copy's receiver, by reading along the answers it forwards
// to the client: one audit record per entry (FIL), and the temporary files it announced
// (TMP) and has not yet renamed, so that they can be removed if it is killed. The bytes
// themselves go to the client unchanged; a receiver whose answers stop making sense is
// no longer watched (its start and end are audited all the same).
import type { Logger } from 'pino';
import { messageOf } from '../errors.js';
import { FILE_STREAM_TOKENS, FileToken } from '../protocol/constants.js';
import { decodeResult, decodeTempNote } from '../protocol/file-messages.js';
import { FrameDecoder } from '../protocol/frame-decoder.js';
import type { SessionAudit } from './session-audit.js';

export class ReceiverWatch {
  private decoder: FrameDecoder | undefined = new FrameDecoder({ maxPayload: 64 * 1024, streamed: FILE_STREAM_TOKENS });
  private readonly temporaries = new Map<number, string>();

  constructor(
    private readonly audit: SessionAudit,
    private readonly log: Logger,
  ) {}

  /** A chunk of the receiver's stdout. */
  answers(chunk: Buffer): void {
    if (!this.decoder) return;
    try {
      for (const { token, payload } of this.decoder.decode(chunk)) {
        if (token === FileToken.TEMP) {
          const note = decodeTempNote(payload);
          this.temporaries.set(note.i, note.path);
        } else if (token === FileToken.RESULT) {
          const result = decodeResult(payload);
          this.temporaries.delete(result.i);
          this.audit.file(result);
        }
      }
    } catch (err) {
      this.log.warn({ err: messageOf(err) }, 'copy receiver answers no longer understood; its entries are not audited');
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
