// One read of a source file for every host that sends it at the same time. Chunks are
// read once, on the first host's demand, and kept until every host sending the file has
// taken them; a host may run at most WINDOW chunks ahead of the slowest, so memory is
// bounded (WINDOW x CHUNK per file being sent) and the slowest host of a group paces the
// others within that window. A host that starts on the file after its first chunk was
// let go gets a read of its own (a new group). Each read hashes its chunks as they come,
// so that the sha256 of what was sent costs no read of its own; a file's sha256 without
// sending it (a host has a file of its size) is one more read, once per copy.
import { createHash } from 'node:crypto';
import { createReadStream, type ReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';

const CHUNK_BYTES = 256 * 1024;
const WINDOW_CHUNKS = 32;

/** One host's way through a file: chunks in order, then null at its end. */
interface SourceCursor {
  next(): Promise<Buffer | null>;
  /** The sha256 of every chunk, once the last one has been read (undefined before, or when the file ended early). */
  digest(): string | undefined;
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
  private readonly hash = createHash('sha256');
  /** Chunks hashed so far (they are read, and so hashed, in order); the sha256 once all are. */
  private hashed = 0;
  private sha256: string | undefined;

  constructor(
    private readonly path: string,
    private readonly size: number,
  ) {
    this.count = Math.ceil(size / CHUNK_BYTES);
    if (this.count === 0) this.sha256 = this.hash.digest('hex');
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
      digest: () => this.sha256,
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
        const chunk = buffer.subarray(0, bytesRead);
        // Chunk k is only asked for once k - 1 is in, so this runs in order; a short read ends the file.
        if (this.hashed === k && bytesRead === length) {
          this.hash.update(chunk);
          this.hashed += 1;
          if (this.hashed === this.count) this.sha256 = this.hash.digest('hex');
        }
        return chunk;
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
  private readonly digests = new Map<number, FileDigest>();

  /**
   * The sha256 of entry `i`'s file (`path`), read once per copy for every host that wants
   * it. A host asks as soon as it has announced the file (so that its hash and the host's
   * run at the same time) and lets go when the host asks for the data instead: when no
   * host wants it any more, the read stops.
   */
  digest(i: number, path: string): DigestClaim {
    let digest = this.digests.get(i);
    if (!digest || digest.abandoned) {
      digest = new FileDigest(path);
      this.digests.set(i, digest);
    }
    return digest.claim();
  }

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

/** One host's interest in a file's sha256. */
interface DigestClaim {
  sha256: Promise<string>;
  /** Not needed any more by this host. */
  release(): void;
}

/** A file's sha256, read for as long as some host wants it. */
class FileDigest {
  private readonly result: Promise<string>;
  private readonly stream: ReadStream;
  private claims = 0;
  private done = false;
  /** Every claim was released before the end: the read was stopped, and a new one starts if asked again. */
  abandoned = false;

  constructor(path: string) {
    const hash = createHash('sha256');
    this.stream = createReadStream(path, { highWaterMark: 1024 * 1024 });
    this.result = new Promise<string>((resolve, reject) => {
      this.stream
        .on('data', (chunk) => hash.update(chunk))
        .on('end', () => {
          this.done = true;
          resolve(hash.digest('hex'));
        })
        .on('error', reject);
    });
    this.result.catch(() => {}); // a claim that is never awaited (released) must not leave a rejection unhandled
  }

  claim(): DigestClaim {
    this.claims += 1;
    let held = true;
    return {
      sha256: this.result,
      release: () => {
        if (!held) return;
        held = false;
        this.claims -= 1;
        if (this.claims === 0 && !this.done) {
          this.abandoned = true;
          this.stream.destroy();
        }
      },
    };
  }
}
