// What `distrun copy` sends: the sources walked into entries (files, directories, links)
// in a fixed order, each file with its size. Its sha256 is not computed ahead: it is
// hashed while it is sent, or read for it only when a host has a file of the same size
// (shared-source.ts). A source the protocol cannot carry exactly (a FIFO, a device, a name
// that is not UTF-8) stops the copy before it starts.
import { constants, type Stats } from 'node:fs';
import { open, lstat, readdir, readlink, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { UsageError } from '../../errors.js';
import type { FileEntry } from '../../protocol/file-messages.js';
import { strictUtf8 } from '../../strict-utf8.js';

export interface SourceEntry {
  entry: FileEntry;
  /** The local file to read (files only). */
  source?: string;
}

interface SourceOptions {
  recursive: boolean;
  preserve: boolean;
}

export async function collectSources(sources: readonly string[], options: SourceOptions): Promise<SourceEntry[]> {
  const entries: SourceEntry[] = [];
  const add = (entry: Omit<FileEntry, 'i'>, source?: string): void => {
    entries.push({ entry: { i: entries.length, ...entry }, ...(source ? { source } : {}) });
  };
  const names = new Set<string>();
  for (const source of sources) {
    const name = basename(source.replace(/\/+$/, '')) || source;
    if (name === '/' || name === '.' || name === '..') throw new UsageError(`${source}: name a file or directory by its own name (not / . or ..)`);
    if (names.has(name)) throw new UsageError(`two sources are named ${name}: they would land on the same path`);
    names.add(name);
    // Without -r a link on the command line is followed, as cp does; with -r it is copied as a link.
    let info: Stats;
    try {
      info = options.recursive ? await lstat(source) : await stat(source);
    } catch (err) {
      throw new UsageError(
        `cannot read ${source}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (err as Error).message}`,
      );
    }
    if (info.isDirectory() && !options.recursive) throw new UsageError(`${source} is a directory (add -r to copy it)`);
    await walk(source, name, info, options, add);
  }
  return entries;
}

async function walk(
  path: string,
  relative: string,
  info: Stats,
  options: SourceOptions,
  add: (entry: Omit<FileEntry, 'i'>, source?: string) => void,
): Promise<void> {
  const mode = info.mode & 0o7777;
  const mtimeMs = options.preserve ? Math.floor(info.mtimeMs) : undefined;
  const dated = mtimeMs === undefined ? {} : { mtimeMs };
  if (info.isSymbolicLink()) {
    add({ path: relative, type: 'link', mode: 0o777, target: await readlink(path), ...dated });
  } else if (info.isFile()) {
    // Opened once now, so that a file this user cannot read stops the copy before it starts.
    await open(path, constants.O_RDONLY | constants.O_NONBLOCK).then(
      (file) => file.close(),
      (err: Error) => {
        throw new UsageError(`cannot read ${path}: ${err.message}`);
      },
    );
    add({ path: relative, type: 'file', mode, size: info.size, ...dated }, path);
  } else if (info.isDirectory()) {
    add({ path: relative, type: 'dir', mode, ...dated });
    const children = (await readdir(path, { encoding: 'buffer' })).sort(Buffer.compare);
    for (const raw of children) {
      const name = strictUtf8(raw);
      if (name === undefined)
        throw new UsageError(`${join(path, raw.toString('latin1'))}: the name is not valid UTF-8, so it cannot be sent exactly`);
      const child = join(path, name);
      await walk(child, `${relative}/${name}`, await lstat(child), options, add);
    }
  } else {
    throw new UsageError(`${path} is not a file, directory or link (a FIFO, device or socket cannot be copied)`);
  }
}
