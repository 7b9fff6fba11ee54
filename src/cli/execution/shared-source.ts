// One read of a source file for every host that sends it at the same time. Chunks are
// read once, on the first host's demand, and kept until every host sending the file has
// taken them; a host may run at most WINDOW chunks ahead of the slowest, so memory is
// bounded (WINDOW x CHUNK per file being sent) and the slowest host of a group paces the
// others within that window. A host that starts on the file after its first chunk was
// let go gets a read of its own (a new group).
import { open, type FileHandle } from 'node:fs/promises';

const CHUNK_BYTES = 256 * 1024;
const WINDOW_CHUNKS = 32;

/** One host's way through a file: chunks in order, then null at its end. */
interface SourceCursor {
  next(): Promise<Buffer | null>;
  /** The host is done with the file (at its end, or given up): it holds no chunk any more. */
  close(): void;
}

class SharedRead {
  private file: Promise<FileHandle> | undefined;
  private readonly chunks = new Map<number, Promise<Buffer>>();
  /** Each open cursor's next chunk. */
  private readonly positions = new Map<object, number>();
  /** The lowest chunk still kept; below it everything was let go. */
  private low = 0;
  private waiting: (() => void)[] = [];
  private readonly count: number;

  constructor(
    private readonly path: string,
    private readonly size: number,
  ) {
    this.count = Math.ceil(size / CHUNK_BYTES);
  }

  /** Chunks kept (read, or being read) for the hosts of this read. */
  get held(): number {
    return this.chunks.size;
  }

  /** Whether a host starting now can still join: nothing has been let go (once every cursor has closed, everything has). */
  get joinable(): boolean {
    return this.low === 0;
  }

  cursor(): SourceCursor {
    const key = {};
    this.positions.set(key, 0);
    return {
      next: async () => {
        const k = this.positions.get(key);
        if (k === undefined || k >= this.count) return null;
        // Not further ahead of the slowest host than the window.
        while (k - this.low >= WINDOW_CHUNKS) await new Promise<void>((resolve) => this.waiting.push(resolve));
        const chunk = await this.chunk(k);
        if (!this.positions.has(key)) return null;
        this.positions.set(key, k + 1);
        this.letGo();
        // A file that shrank while it was read ends early; the receiver's count catches it.
        return chunk.length > 0 ? chunk : null;
      },
      close: () => {
        this.positions.delete(key);
        this.letGo();
      },
    };
  }

  private chunk(k: number): Promise<Buffer> {
    let chunk = this.chunks.get(k);
    if (!chunk) {
      this.file ??= open(this.path, 'r');
      const length = Math.min(CHUNK_BYTES, this.size - k * CHUNK_BYTES);
      chunk = this.file.then(async (file) => {
        const buffer = Buffer.allocUnsafe(length);
        const { bytesRead } = await file.read(buffer, 0, length, k * CHUNK_BYTES);
        return buffer.subarray(0, bytesRead);
      });
      this.chunks.set(k, chunk);
    }
    return chunk;
  }

  // Chunks every open cursor has passed are dropped; with no cursor left, the file is closed.
  private letGo(): void {
    const slowest = this.positions.size > 0 ? Math.min(...this.positions.values()) : this.count;
    while (this.low < slowest) this.chunks.delete(this.low++);
    for (const wake of this.waiting.splice(0)) wake();
    if (this.positions.size === 0 && this.file) {
      const file = this.file;
      this.file = undefined;
      void file.then((f) => f.close()).catch(() => {});
      this.chunks.clear();
    }
  }
}

/** The shared reads of a copy's files, by entry. */
export class SharedSources {
  private readonly reads = new Map<number, SharedRead>();

  /** Chunks kept for entry `i`'s newest read: what its hosts hold in memory together. */
  held(i: number): number {
    return this.reads.get(i)?.held ?? 0;
  }

  /** A cursor over entry `i`'s file (`path`, `size` bytes as announced), joining the read in progress when it can. */
  cursor(i: number, path: string, size: number): SourceCursor {
    let read = this.reads.get(i);
    if (!read || !read.joinable) {
      read = new SharedRead(path, size);
      this.reads.set(i, read);
    }
    return read.cursor();
  }
}
