// Files only their owner may read (keys, TLS session tickets): created 0600 in 0700
// directories whatever the umask, and replaced atomically so a reader never sees half.
import { randomBytes } from 'node:crypto';
import {
  chmodSync, closeSync, existsSync, fchmodSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, statSync, writeSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';

/** Creates `dir` and any missing parents with mode 0700 (whatever the umask). */
export function makePrivateDir(dir: string): void {
  const missing: string[] = [];
  for (let d = resolve(dir); !existsSync(d); d = dirname(d)) missing.unshift(d);
  for (const d of missing) {
    try {
      mkdirSync(d);
    } catch (err) {
      // Another process (a parallel `distrun certs agent`) made it meanwhile: it is made private the same way.
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || !statSync(d).isDirectory()) throw err;
    }
    chmodSync(d, 0o700);
  }
}

/**
 * Makes `dir` private (0700), creating it and missing parents, narrowing it if it is ours.
 * Returns false for a shared directory (sticky, like /tmp, or someone else's), which is
 * left as it is: secrets do not belong there.
 */
export function ensurePrivateDir(dir: string): boolean {
  makePrivateDir(dir);
  const { mode, uid } = statSync(dir);
  if ((mode & 0o077) === 0) return true;
  if ((mode & 0o1000) !== 0 || uid !== process.getuid?.()) return false;
  chmodSync(dir, 0o700);
  return true;
}

/** Whether `dir` exists, is ours, and only we may read or write it. */
export function isPrivateDir(dir: string): boolean {
  try {
    const { mode, uid } = statSync(dir);
    return (mode & 0o077) === 0 && uid === process.getuid?.();
  } catch {
    return false;
  }
}

/**
 * Writes a file atomically with an exact mode: a new temp file (never an existing one,
 * whatever its permissions) is written, chmodded against the umask, then renamed over
 * the target, which is replaced whole, mode included.
 */
export function writeFileWithMode(file: string, content: string, mode: number, options: { durable?: boolean } = {}): void {
  const temp = join(dirname(file), `.${basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(temp, 'wx', mode);
  try {
    writeSync(fd, content);
    fchmodSync(fd, mode);
    // Caches skip the flush to disk: losing one in a crash costs nothing but time.
    if (options.durable !== false) fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(temp, { force: true });
    throw err;
  }
  closeSync(fd);
  renameSync(temp, file);
}
